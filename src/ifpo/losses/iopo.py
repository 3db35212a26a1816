"""IOPO (Input-Output Preference Optimization, arXiv 2411.06208).

An example holds two instructions x1, x2 that differ in some constraints and their
responses y1, y2. With r_ij = r(x_i, y_j) the loss is
    -log sigma(beta/2 * [(2 r11 - r12 - r21) + (2 r22 - r21 - r12)])
which simplifies to -log sigma(beta * (r11 + r22 - r12 - r21)): matched pairs must
beat the crossed pairs, both as output preference (fixed x) and input preference (fixed y).
"""

from __future__ import annotations

from typing import Any

import torch

from ifpo.config.schema import IOPOLossConfig
from ifpo.losses.base import LossHead, LossOutput, SequenceLogps, register_loss
from ifpo.losses.functional import per_token_nll, sigmoid_preference_loss
from ifpo.models.batch import Batch


@register_loss("iopo")
class IOPOLoss(LossHead):
    record_kind = "quad"
    # r11, r22 are the matched pairs; r12 = (x1, y2), r21 = (x2, y1) the crossed ones.
    roles = ("x1y1", "x2y2", "x1y2", "x2y1")
    schema = IOPOLossConfig  # the defaults; get_loss_head fills them in

    def __init__(self, *, beta: float, label_smoothing: float, sft_weight: float, **options: Any) -> None:
        super().__init__(**options)
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"loss.label_smoothing={label_smoothing} must be in [0, 0.5)")
        self.beta, self.label_smoothing, self.sft_weight = beta, label_smoothing, sft_weight

    def metrics(
        self, r11: torch.Tensor, r22: torch.Tensor, r12: torch.Tensor, r21: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """TRL's names and meaning (beta-scaled implicit rewards), per side of the quad.

        rewards/r11..r21 are beta * r_ij; rewards/chosen|rejected the mean matched and crossed
        rewards, margins their difference (TRL's identity margins = chosen - rejected; the loss
        logit is 2 * margins), accuracies how often matched beats crossed. The two sides of the
        loss: rewards/output_margins (fixed x: beta/2 * (2 r11 - r12 - r21)) and
        rewards/input_margins (fixed y: beta/2 * (2 r22 - r21 - r12)); they sum to the logit.
        """
        b = self.beta
        chosen, rejected = b * (r11 + r22) / 2, b * (r12 + r21) / 2
        values = {
            "rewards/r11": b * r11,
            "rewards/r22": b * r22,
            "rewards/r12": b * r12,
            "rewards/r21": b * r21,
            "rewards/chosen": chosen,
            "rewards/rejected": rejected,
            "rewards/margins": chosen - rejected,
            "rewards/accuracies": (chosen > rejected).to(chosen.dtype),
            "rewards/output_margins": b / 2 * (2 * r11 - r12 - r21),
            "rewards/input_margins": b / 2 * (2 * r22 - r21 - r12),
        }
        return {name: value.detach() for name, value in values.items()}

    def __call__(self, logps: SequenceLogps, batch: Batch) -> LossOutput:
        r11, r22, r12, r21 = (logps.reward(role) for role in self.roles)
        logits = self.beta / 2 * ((2 * r11 - r12 - r21) + (2 * r22 - r21 - r12))
        per_example = sigmoid_preference_loss(logits, self.label_smoothing)
        metrics = self.metrics(r11, r22, r12, r21)
        metrics["logps/matched"] = ((logps.policy["x1y1"] + logps.policy["x2y2"]) / 2).detach()
        metrics["logps/crossed"] = ((logps.policy["x1y2"] + logps.policy["x2y1"]) / 2).detach()
        if self.sft_weight:
            nll = (
                per_token_nll(logps.policy["x1y1"], logps.tokens["x1y1"])
                + per_token_nll(logps.policy["x2y2"], logps.tokens["x2y2"])
            ) / 2
            per_example = per_example + self.sft_weight * nll
            metrics["sft/nll"] = nll.detach()
        return LossOutput(loss=per_example.mean(), metrics=metrics)
