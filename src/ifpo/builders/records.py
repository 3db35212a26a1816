"""Trainer record shapes (pair / quad, see ``ifpo.data.records``) with provenance under ``meta``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ifpo.constraints import Constraint
from ifpo.sampling.base import Messages


def assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def constraint_list(constraints: Sequence[Constraint]) -> list[dict[str, Any]]:
    return [c.to_dict() for c in constraints]


def pair_record(prompt: Messages, chosen: str, rejected: str, meta: dict[str, Any],
                margin: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"prompt": prompt, "chosen": assistant(chosen), "rejected": assistant(rejected)}
    if margin is not None:
        record["margin"] = margin
    record["meta"] = meta
    return record


def quad_record(x1: Messages, x2: Messages, y1: str, y2: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"x1": x1, "x2": x2, "y1": assistant(y1), "y2": assistant(y2), "meta": meta}
