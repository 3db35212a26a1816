"""The contract every loss head fulfils, and the registry that finds heads by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ifpo.config.schema import loss_options
from ifpo.models.batch import Batch


@dataclass
class SequenceLogps:
    """Per-sequence summed log-probabilities over response tokens, grouped by role.

    `policy[role]` and `reference[role]` are float tensors of shape [batch];
    `tokens[role]` holds the response token counts (for length-normalised variants).
    `reference` is None for heads that need no reference model (SFT).
    """

    policy: dict[str, torch.Tensor]
    tokens: dict[str, torch.Tensor]
    reference: dict[str, torch.Tensor] | None = None

    def reward(self, role: str) -> torch.Tensor:
        """r(x, y) = log pi_theta(y|x) - log pi_ref(y|x) for the sequences of `role`."""
        if self.reference is None:
            raise ValueError("this head needs reference log-probs but none were computed")
        return self.policy[role] - self.reference[role]


@dataclass
class LossOutput:
    """The scalar loss plus per-example metric values (averaged by the caller)."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class LossHead:
    """Base class: a head names the record kind it trains on and the sequences it needs.

    `roles` lists the sequences the collator must build per example, in order; the
    policy runs one concatenated forward over all of them. The head is their one home: the
    datamodule hands them to the collator once and every batch carries them (`Batch.roles`).
    `schema` is the head's dataclass in ifpo.config.schema, the one home of its option
    defaults (constructors take no defaults).
    """

    name: ClassVar[str] = ""
    record_kind: ClassVar[str] = "pair"  # "pair" or "quad"
    roles: ClassVar[tuple[str, ...]] = ("chosen", "rejected")
    needs_reference: ClassVar[bool] = True
    schema: ClassVar[type | None] = None

    def __init__(self, **options: Any) -> None:
        self.options = options

    def __call__(self, logps: SequenceLogps, batch: Batch) -> LossOutput:
        raise NotImplementedError


_REGISTRY: dict[str, type[LossHead]] = {}


def register_loss(name: str) -> Callable[[type[LossHead]], type[LossHead]]:
    """Class decorator: make a head selectable as `loss=<name>`."""

    def decorator(cls: type[LossHead]) -> type[LossHead]:
        if name in _REGISTRY:
            raise ValueError(f"loss head {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def registered_losses() -> list[str]:
    return sorted(_REGISTRY)


def get_loss_head(name: str, **options: Any) -> LossHead:
    """Instantiate the head called `name` with its config options; those left out take the
    defaults of the head's schema (ifpo.config.schema), unknown ones are refused by name."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown loss.name={name!r}; registered heads: {', '.join(registered_losses())}"
        ) from None
    return cls(**(loss_options(cls.schema, name, options) if cls.schema else options))
