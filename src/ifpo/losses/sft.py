"""SFT: per-token NLL of the response, the supervised stage both papers start from.

Trains on the `chosen` side of pair records; no reference model is loaded.
"""

from __future__ import annotations

from ifpo.config.schema import SFTLossConfig
from ifpo.losses.base import LossHead, LossOutput, SequenceLogps, register_loss
from ifpo.models.batch import Batch


@register_loss("sft")
class SFTLoss(LossHead):
    record_kind = "pair"
    roles = ("chosen",)
    needs_reference = False
    schema = SFTLossConfig

    def __call__(self, logps: SequenceLogps, batch: Batch) -> LossOutput:
        # Token-weighted mean over the batch (the usual causal-LM objective), so long
        # responses are not down-weighted relative to short ones.
        total_tokens = logps.tokens["chosen"].sum().clamp(min=1).to(logps.policy["chosen"].dtype)
        loss = -logps.policy["chosen"].sum() / total_tokens
        per_token = -logps.policy["chosen"] / logps.tokens["chosen"].clamp(min=1)
        return LossOutput(
            loss=loss,
            metrics={"sft/nll": per_token.detach(), "logps/chosen": logps.policy["chosen"].detach()},
        )
