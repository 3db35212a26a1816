"""Preference loss heads: a registry mapping `loss.name` to a head class.

Heads are pure functions of per-sequence log-probabilities, so they are testable
without a model and reusable under any strategy (DDP, ZeRO-3, precomputed reference).
"""

from ifpo.losses import dpo, iopo, rpo, sft  # noqa: F401  (registration side effects)
from ifpo.losses.base import (
    LossHead,
    LossOutput,
    SequenceLogps,
    get_loss_head,
    register_loss,
    registered_losses,
)

__all__ = [
    "LossHead",
    "LossOutput",
    "SequenceLogps",
    "get_loss_head",
    "register_loss",
    "registered_losses",
]
