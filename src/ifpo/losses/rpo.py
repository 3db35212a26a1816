"""RPO (Reverse Preference Optimization, arXiv 2505.22172): DPO plus an adaptive margin.

The margin g of an example is the number of constraints on which chosen and rejected
differ (the `margin` field written by the RPO builder). The paper's loss is
-log sigma(beta * Delta - gamma * g); the authors' released code computes
-log sigma(beta * (Delta - gamma * g)), i.e. the margin scaled by beta as well.
`margin_in_beta=True` reproduces the released code.
"""

from __future__ import annotations

from typing import Any

import torch

from ifpo.config.schema import RPOLossConfig
from ifpo.losses.base import LossOutput, SequenceLogps, register_loss
from ifpo.losses.dpo import DPOLoss
from ifpo.models.batch import Batch


@register_loss("rpo")
class RPOLoss(DPOLoss):
    schema = RPOLossConfig

    def __init__(self, *, gamma: float, margin_in_beta: bool, **options: Any) -> None:
        super().__init__(**options)
        if self.variant != "sigmoid":
            raise ValueError(
                "loss=rpo supports only variant=sigmoid (the margin is defined inside log sigma)"
            )
        self.gamma, self.margin_in_beta = gamma, margin_in_beta

    def preference_logits(self, logps: SequenceLogps, batch: Batch) -> torch.Tensor:
        delta = logps.reward("chosen") - logps.reward("rejected")
        margin = batch.margin.to(delta.dtype)
        if self.margin_in_beta:
            return self.beta * (delta - self.gamma * margin)
        return self.beta * delta - self.gamma * margin

    def __call__(self, logps: SequenceLogps, batch: Batch) -> LossOutput:
        out = super().__call__(logps, batch)
        out.metrics["rewards/target_margin"] = batch.margin.to(out.loss.dtype).detach()
        return out
