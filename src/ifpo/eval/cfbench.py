"""CFBench (Zhang et al., 2024, arXiv 2408.01122): CSR, ISR and PSR from judged checklists.

Expected file (the published ``data/cfbench_data.json``): a JSON array (or JSONL) of
objects with

- ``idx``      int or str   item id
- ``prompt``   str          the instruction given to the model
- ``criteria`` list         each ``[text, priority, *categories]``; ``priority`` is
                            ``"主需"``/``"primary"`` or ``"次需"``/``"secondary"``
- ``gold``     str          optional reference answer ("" when none)
- ``split``    str          optional, e.g. ``"easy"``/``"hard"`` (per-split metrics)

Metrics follow the authors' evaluation code: every metric is a mean over items.
CSR = mean per-item fraction of satisfied criteria; ISR = fraction of items with every
criterion satisfied; PSR per item = 0 if any primary criterion fails, 1 if all criteria
are primary (and pass), 1 if all are secondary and the item CSR > 0.8, otherwise
(primary all pass + secondaries) 1 iff 0.5 + 0.5 * mean(secondary) > 0.8. Comparisons
use exact fractions so 3/5 secondaries (0.5 + 0.3 == 0.8) reliably fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
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

PRIMARY, SECONDARY = "primary", "secondary"
_PRIORITY_ALIASES = {"主需": PRIMARY, "primary": PRIMARY, "次需": SECONDARY, "secondary": SECONDARY}
_PASS_LINE = Fraction(4, 5)


@dataclass(frozen=True)
class CFBenchItem:
    id: Any
    prompt: str
    criteria: tuple[str, ...]
    priorities: tuple[str, ...]
    gold: str = ""
    split: str | None = None


@dataclass(frozen=True)
class CFBenchJudgement:
    id: Any
    priorities: tuple[str, ...]
    judgement: ConstraintJudgement
    split: str | None = None


def _parse_row(row: dict[str, Any], error: Callable[[str, str], Exception]) -> CFBenchItem:
    item_id = require(row, "idx", (int, str), error)
    prompt = non_empty_text(row, "prompt", error)
    raw = require(row, "criteria", list, error)
    if not raw:
        raise error("criteria", "is empty")
    texts, priorities = [], []
    for n, entry in enumerate(raw):
        if not isinstance(entry, list) or len(entry) < 2:
            raise error(f"criteria[{n}]", "expected [text, priority, ...]")
        text, priority = entry[0], entry[1]
        if not isinstance(text, str) or not text.strip():
            raise error(f"criteria[{n}][0]", "criterion text must be a non-empty string")
        if priority not in _PRIORITY_ALIASES:
            raise error(
                f"criteria[{n}][1]",
                f"unknown priority {priority!r} (expected 主需/次需 or primary/secondary)",
            )
        texts.append(text.strip())
        priorities.append(_PRIORITY_ALIASES[priority])
    gold = row.get("gold", "") or ""
    if not isinstance(gold, str):
        raise error("gold", f"expected str, got {type(gold).__name__}")
    split = row.get("split")
    if split is not None and not isinstance(split, str):
        raise error("split", f"expected str, got {type(split).__name__}")
    return CFBenchItem(item_id, prompt, tuple(texts), tuple(priorities), gold, split)


def load_cfbench(path: str | os.PathLike[str], *, on_bad_row: OnBadRow = "raise") -> LoadedItems[CFBenchItem]:
    """Items from a CFBench file (layout in the module docstring)."""
    return load_rows(path, _parse_row, on_bad_row=on_bad_row)


def _instruction(item: CFBenchItem) -> str:
    if not item.gold.strip():
        return item.prompt
    return f"{item.prompt}\n\n[Reference answer, for context only]\n{item.gold}"


def judge_cfbench(
    items: Sequence[CFBenchItem],
    responses: Mapping[Any, str] | Sequence[str],
    client: JudgeClient,
    *,
    on_error: OnError = "raise",
) -> list[CFBenchJudgement]:
    """One judge call per item grading all its criteria; ``responses`` aligned or keyed by ``idx``."""
    texts = align_responses([item.id for item in items], responses, "CFBench")
    requests = [JudgeRequest(_instruction(item), text, item.criteria) for item, text in zip(items, texts)]
    judgements = client.judge_many(requests, on_error=on_error, desc="CFBench judge")
    return [CFBenchJudgement(item.id, item.priorities, j, item.split) for item, j in zip(items, judgements)]


def item_psr(satisfied: Sequence[bool], priorities: Sequence[str]) -> int:
    """CFBench's priority satisfaction for one item (rule in the module docstring)."""
    if len(satisfied) != len(priorities) or not satisfied:
        raise ValueError(f"{len(satisfied)} verdicts for {len(priorities)} criteria")
    primary = [ok for ok, p in zip(satisfied, priorities) if p == PRIMARY]
    secondary = [ok for ok, p in zip(satisfied, priorities) if p == SECONDARY]
    if not all(primary):
        return 0
    if not secondary:
        return 1
    if not primary:
        return int(Fraction(sum(secondary), len(secondary)) > _PASS_LINE)
    return int(Fraction(1, 2) + Fraction(sum(secondary), 2 * len(secondary)) > _PASS_LINE)


def _summary(judgements: Sequence[CFBenchJudgement]) -> dict[str, float]:
    csr, isr, psr = [], [], []
    for j in judgements:
        flags = j.judgement.satisfied or ()
        csr.append(sum(flags) / len(flags))
        isr.append(float(all(flags)))
        psr.append(float(item_psr(flags, j.priorities)))
    n = len(judgements)
    return {"CSR": sum(csr) / n, "ISR": sum(isr) / n, "PSR": sum(psr) / n, "n": n}


def score_cfbench(
    judgements: Sequence[CFBenchJudgement], *, on_failed: OnFailed = "raise"
) -> dict[str, float]:
    """CSR/ISR/PSR overall and per split (``CSR_easy`` ...), plus ``n`` and ``n_failed``."""
    usable = split_failed(judgements, lambda j: judgement_ok(j.judgement), on_failed, "CFBench")
    if not usable:
        raise ValueError("CFBench: no usable judgements to score")
    metrics: dict[str, float] = _summary(usable)
    for split in sorted({j.split for j in usable if j.split}):
        part = _summary([j for j in usable if j.split == split])
        metrics.update({f"{key}_{split}": value for key, value in part.items()})
    metrics["n_failed"] = len(judgements) - len(usable)
    return metrics
