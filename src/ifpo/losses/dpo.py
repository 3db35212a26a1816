"""DPO (Rafailov et al. 2023) with its common variants: conservative, IPO and hinge."""

from __future__ import annotations

from typing import Any

import torch

from ifpo.config.schema import DPOLossConfig
from ifpo.losses.base import LossHead, LossOutput, SequenceLogps, register_loss
from ifpo.losses.functional import hinge_preference_loss, ipo_loss, per_token_nll, sigmoid_preference_loss
from ifpo.models.batch import Batch

VARIANTS = ("sigmoid", "ipo", "hinge")


def pair_metrics(logps: SequenceLogps, beta: float) -> dict[str, torch.Tensor]:
    """TRL's DPO metrics with TRL's meaning, per example (the module averages them exactly).

    rewards/chosen|rejected are the implicit rewards beta * (log pi - log pi_ref), margins their
    difference, accuracies how often chosen beats rejected; logps/* are the policy's log-probs.
    """
    chosen, rejected = beta * logps.reward("chosen"), beta * logps.reward("rejected")
    return {
        "rewards/chosen": chosen.detach(),
        "rewards/rejected": rejected.detach(),
        "rewards/margins": (chosen - rejected).detach(),
        "rewards/accuracies": (chosen > rejected).to(chosen.dtype).detach(),
        "logps/chosen": logps.policy["chosen"].detach(),
        "logps/rejected": logps.policy["rejected"].detach(),
    }


@register_loss("dpo")
class DPOLoss(LossHead):
    """-log sigma(beta * Delta), Delta = r(x, y_w) - r(x, y_l); see `VARIANTS` for the others."""

    record_kind = "pair"
    roles = ("chosen", "rejected")
    schema = DPOLossConfig  # the defaults; get_loss_head fills them in

    def __init__(
        self, *, beta: float, label_smoothing: float, variant: str, sft_weight: float, **options: Any
    ) -> None:
        super().__init__(**options)
        if variant not in VARIANTS:
            raise ValueError(f"loss.variant={variant!r}; allowed: {', '.join(VARIANTS)}")
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"loss.label_smoothing={label_smoothing} must be in [0, 0.5)")
        self.beta, self.label_smoothing, self.variant, self.sft_weight = (
            beta,
            label_smoothing,
            variant,
            sft_weight,
        )

    def preference_logits(self, logps: SequenceLogps, batch: Batch) -> torch.Tensor:
        """The argument of log sigma; RPO overrides this to subtract its margin."""
        return self.beta * (logps.reward("chosen") - logps.reward("rejected"))

    def __call__(self, logps: SequenceLogps, batch: Batch) -> LossOutput:
        delta = logps.reward("chosen") - logps.reward("rejected")
        if self.variant == "sigmoid":
            per_example = sigmoid_preference_loss(self.preference_logits(logps, batch), self.label_smoothing)
        elif self.variant == "hinge":
            per_example = hinge_preference_loss(self.beta * delta)
        else:
            avg_delta = logps.reward("chosen") / logps.tokens["chosen"].clamp(min=1) - logps.reward(
                "rejected"
            ) / logps.tokens["rejected"].clamp(min=1)
            per_example = ipo_loss(avg_delta, self.beta)
        metrics = pair_metrics(logps, self.beta)
        if self.sft_weight:
            nll = per_token_nll(logps.policy["chosen"], logps.tokens["chosen"])
            per_example = per_example + self.sft_weight * nll
            metrics["sft/nll"] = nll.detach()
        return LossOutput(loss=per_example.mean(), metrics=metrics)
