"""TRACE (the IOPO paper's benchmark, arXiv 2411.06208): IF-S and IF-M from judge scores.

Expected file: JSONL (or a JSON array) of objects with

- ``id``           int or str     item id
- ``instruction``  str            the full instruction (``prompt`` is accepted as an alias)
- ``constraints``  list[str]      the constraint descriptions the judge grades (non-empty)
- ``type``         str, optional  ``"single"`` or ``"multi"``; when absent the item is
                                  single-constraint iff it has exactly one constraint

Judge score per instruction: the fraction of its constraints the judge marks satisfied
(one call grades them all). An instruction passes when its score >= ``threshold``.
The authors did not publish their threshold; we default to 1.0 -- an instruction is
followed only if *every* constraint is -- the strictest reading, matching how ISR is
defined elsewhere. IF-S = pass rate on single-constraint items, IF-M on multi.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ifpo.eval.judged import (
    LoadedItems,
    OnBadRow,
    OnFailed,
    align_responses,
    judgement_ok,
    load_rows,
    non_empty_text,
    require,
    split_failed,
)
from ifpo.judge.client import JudgeClient, OnError
from ifpo.judge.verdicts import ConstraintJudgement, JudgeRequest

DEFAULT_PASS_THRESHOLD = 1.0
_TYPES = ("single", "multi")


@dataclass(frozen=True)
class TraceItem:
    id: Any
    instruction: str
    constraints: tuple[str, ...]
    multi: bool


@dataclass(frozen=True)
class TraceJudgement:
    id: Any
    multi: bool
    judgement: ConstraintJudgement

    @property
    def score(self) -> float:
        flags = self.judgement.satisfied or ()
        return sum(flags) / len(flags)


def _parse_row(row: dict[str, Any], error: Callable[[str, str], Exception]) -> TraceItem:
    item_id = require(row, "id", (int, str), error)
    field = "instruction" if "instruction" in row or "prompt" not in row else "prompt"
    instruction = non_empty_text(row, field, error)
    raw = require(row, "constraints", list, error)
    if not raw:
        raise error("constraints", "is empty")
    for n, text in enumerate(raw):
        if not isinstance(text, str) or not text.strip():
            raise error(f"constraints[{n}]", "must be a non-empty string")
    kind = row.get("type")
    if kind is None:
        multi = len(raw) > 1
    elif kind in _TYPES:
        multi = kind == "multi"
    else:
        raise error("type", f"expected 'single' or 'multi', got {kind!r}")
    return TraceItem(item_id, instruction, tuple(t.strip() for t in raw), multi)


def load_trace(path: str | os.PathLike[str], *, on_bad_row: OnBadRow = "raise") -> LoadedItems[TraceItem]:
    """Items from a TRACE evaluation file (layout in the module docstring)."""
    return load_rows(path, _parse_row, on_bad_row=on_bad_row)


def judge_trace(
    items: Sequence[TraceItem],
    responses: Mapping[Any, str] | Sequence[str],
    client: JudgeClient,
    *,
    on_error: OnError = "raise",
) -> list[TraceJudgement]:
    """One judge call per instruction; ``responses`` aligned with items or keyed by ``id``."""
    texts = align_responses([item.id for item in items], responses, "TRACE")
    requests = [JudgeRequest(item.instruction, text, item.constraints) for item, text in zip(items, texts)]
    judgements = client.judge_many(requests, on_error=on_error, desc="TRACE judge")
    return [TraceJudgement(item.id, item.multi, j) for item, j in zip(items, judgements)]


def _pass_rate(judgements: Sequence[TraceJudgement], threshold: float) -> float | None:
    if not judgements:
        return None
    return sum(j.score >= threshold for j in judgements) / len(judgements)


def score_trace(
    judgements: Sequence[TraceJudgement],
    *,
    threshold: float = DEFAULT_PASS_THRESHOLD,
    on_failed: OnFailed = "raise",
) -> dict[str, float | None]:
    """IF-S, IF-M, overall pass rate and mean score; a subset with no items reports None."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    usable = split_failed(judgements, lambda j: judgement_ok(j.judgement), on_failed, "TRACE")
    if not usable:
        raise ValueError("TRACE: no usable judgements to score")
    single = [j for j in usable if not j.multi]
    multi = [j for j in usable if j.multi]
    return {
        "IF-S": _pass_rate(single, threshold),
        "IF-M": _pass_rate(multi, threshold),
        "IF": _pass_rate(usable, threshold),
        "mean_score": sum(j.score for j in usable) / len(usable),
        "threshold": threshold,
        "n_single": len(single),
        "n_multi": len(multi),
        "n_failed": len(judgements) - len(usable),
    }
