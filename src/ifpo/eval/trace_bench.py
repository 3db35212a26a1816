"""TRACE (the IOPO authors' benchmark, arXiv 2411.06208): IF-S / IF-M from GPT-4o's 0-10 scores.

The released evaluation file (``TRACE/202409_trace_evaluation.jsonl`` of Tongyi-CCAI/Complex-IF,
1,042 rows) has one JSON object per line:

- ``id``                 str            ``"0"`` ... ``"1041"`` (ints are accepted and kept as text)
- ``messages``           list           ``[{"role": "system", ...}, {"role": "user", ...}]``: the
                                        conversation the model answers, system message included
- ``type``               str            ``"trace"``
- ``description``        str            the task without its constraints
- ``constraints``        str            the numbered constraints as one text (what the judge sees)
- ``constraints_splits`` list[str]      the same constraints one per entry
- ``constraints_num``    int            ``len(constraints_splits)``: 1 = IF-S item, more = IF-M item
- ``input``              str            the task input, ``"NULL"`` when there is none
- ``levels2``, ``category``             constraint types / data version (kept, not used)

Judging follows the authors' evaluator (``Eval_script/src/evaluators/trace``): their template
asks the judge for a 0-10 score per constraint, a JSON "Fine Grained Score" and a final
``Constraints Overall Score: [[d]]``; the overall score is the item's score (an answer without
it scores nothing: ``overall`` is None). Their judge is ``gpt-4o`` at temperature 0.0, top-p 0.8,
behind the system message "You are a helpful assistant.".

Aggregation: the authors' ``metric_trace`` is not in their release. We report, per subset
(IF-S: ``constraints_num == 1``, IF-M: ``> 1``, IF: all), the mean overall score as a fraction
of the maximum (``mean / 10``, so 0.85 reads as the paper's 85.0), and the share of items scoring at least
``pass_threshold``
(``IF-S_pass`` ...). README "Benchmarks as released" says which we compare with the paper.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ifpo.eval.judged import LoadedItems, OnBadRow, OnFailed, load_rows, require, split_failed

JUDGE_SYSTEM_PROMPT = "You are a helpful assistant."
DEFAULT_PASS_THRESHOLD = 10.0
_ROLES = ("system", "user", "assistant")

# The authors' template (Eval_script/src/evaluators/trace/template.py), verbatim: it is the
# benchmark's scoring instrument, so any paraphrase would change the numbers.
_FINE_GRAINED_EXAMPLE = json.dumps(
    [{"密码至少8个字符": 10, "包含1个大写字母": 0, "包含1个小写字母": 0, "包含2个数字": 10}],
    ensure_ascii=False,
)
_TEMPLATE = """[System]
You are a fair judge, and please evaluate the quality of an AI assistant’s response to user query. You need to assess the response based on the following constraints. 
We will provide you with the user’s query, some constraints, and the AI assistant’s response that needs your evaluation. When you commence your evaluation, you should follow the following process:
1. Evaluate the AI assistant’s response on different constraints, and after each constraint evaluation, assign a score from 0 to 10.
2. Finally, aggregate the assessments from each  constraint to give an overall score for the AI assistant’s response, ranging from 0 to 10.
3. Your scoring should be as strict as possible, overall, the higher the quality of the model’s response, the higher the score.
4. When the model’s response is irrelevant to the question, contains significant factual errors, or generates harmful content, the dimension total score must be 0 points.
5. It is necessary to strictly follow the format in the / *Example * / for generation, the formats for Fine Grained Score is Json, the formats Constraints Overall Score is [[d]].
Please remember to provide evaluations and explanations before your scoring. After your explanation of each constraint, include a score for that constraint. Then, output Fine Grained Score. Finally, output overall score in format like "Constraints Overall Score: [[5]]"

/ *Example * /
—INPUT—
< query >:
为该账户创建一个密码
< constraints >:
1. 密码至少8个字符；
2. 包含1个大写字母；
3. 包含1个小写字母；
4. 包含2个数字；
< response >:
Ax7y4gTf

—OUTPUT—
Explanation: 
1. 密码长度：密码长度为8个字符，符合第1条约束，得分10分。
2. 包含一个大写字母：密码“Ax7y4gTf”里包含“A”和“T”两个大写字母，不符合第2条约束，得分0分。
3. 包含一个小写字母：密码“Ax7y4gTf”里包含“x”、“y”和“g”三个小写字母，不符合第3条约束，得分0分。
4. 包含两个数字：密码“Ax7y4gTf”里包含“7”和“4”两个数字，符合第4条约束，得分10分。
Fine Grained Score: {format_str}
Constraints Overall Score: [[5]]

/ *Input * /
—INPUT—
< query >:
{description}
< constraints >:
{constraints}
< response >:
{ans}

—OUTPUT—"""  # noqa: E501 (the authors' judge prompt, verbatim)

_OVERALL = re.compile(r"Constraints Overall Score:\s*\[\[([0-9.]+)\]\]", re.DOTALL)
_FINE = re.compile(r"Fine Grained Score:\s*(\[.*?\]|\{.*?\})\s*(?:\n|Constraints Overall Score)", re.DOTALL)


@dataclass(frozen=True)
class TraceItem:
    id: str
    messages: tuple[Mapping[str, str], ...]  # what the model answers, system message included
    description: str
    constraints: str
    constraint_list: tuple[str, ...]
    input: str

    @property
    def multi(self) -> bool:
        return len(self.constraint_list) > 1

    @property
    def query(self) -> str:
        """The judge's ``< query >``: the full user message (the template's rule: ``description`` if it says
        NULL)."""
        question = self.messages[-1]["content"]
        return self.description if "NULL" in question else question


def _parse_row(row: dict[str, Any], error: Callable[[str, str], Exception]) -> TraceItem:
    raw_id = require(row, "id", (str, int), error)
    messages = require(row, "messages", list, error)
    if not messages:
        raise error("messages", "is empty")
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise error(f"messages[{n}]", "expected {'role': system|user|assistant, 'content': str}")
        if not isinstance(message.get("content"), str):
            raise error(f"messages[{n}].content", "expected str")
    if messages[-1]["role"] != "user":
        raise error(f"messages[{len(messages) - 1}].role", "the last message must be the user's")
    constraints = require(row, "constraints", str, error)
    splits = require(row, "constraints_splits", list, error)
    if not splits or not all(isinstance(s, str) and s.strip() for s in splits):
        raise error("constraints_splits", "expected a non-empty list of non-empty strings")
    number = require(row, "constraints_num", int, error)
    if number != len(splits):
        raise error("constraints_num", f"is {number} but constraints_splits has {len(splits)} entries")
    description = require(row, "description", str, error)
    task_input = row.get("input", "NULL")
    if not isinstance(task_input, str):
        raise error("input", f"expected str, got {type(task_input).__name__}")
    kept = tuple({"role": m["role"], "content": m["content"]} for m in messages)
    return TraceItem(str(raw_id), kept, description, constraints, tuple(splits), task_input)


def load_trace(path: str | os.PathLike[str], *, on_bad_row: OnBadRow = "raise") -> LoadedItems[TraceItem]:
    """Items of a TRACE evaluation file in the released layout (module docstring)."""
    return load_rows(path, _parse_row, on_bad_row=on_bad_row)


def judge_prompt(item: TraceItem, response: str) -> str:
    """The authors' judge prompt for one answer."""
    return _TEMPLATE.format(
        format_str=_FINE_GRAINED_EXAMPLE, description=item.query, constraints=item.constraints, ans=response
    )


def judge_messages(item: TraceItem, response: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": judge_prompt(item, response)},
    ]


def parse_overall(answer: str) -> float:
    """The ``Constraints Overall Score: [[d]]`` value (ValueError when absent, as the authors' regex)."""
    match = _OVERALL.search(answer)
    if match is None:
        raise ValueError("no 'Constraints Overall Score: [[d]]' in the judge answer")
    return float(match.group(1).strip())


def parse_fine_grained(answer: str) -> dict[str, float] | None:
    """Per-constraint 0-10 scores from the ``Fine Grained Score`` JSON, or None (informational only)."""
    match = _FINE.search(answer)
    if match is None:
        return None
    try:
        value = json.loads(match.group(1))
    except ValueError:
        return None
    entries = value if isinstance(value, list) else [value]
    scores: dict[str, float] = {}
    for entry in entries:
        if isinstance(entry, dict):
            scores.update({str(k): float(v) for k, v in entry.items() if isinstance(v, (int, float))})
    return scores or None


def judge_record(raw: str, overall: float | None, problem: str | None) -> dict[str, Any]:
    """What is saved per item (progress file and examples.jsonl)."""
    return {
        "overall": overall,
        "fine_grained": parse_fine_grained(raw) if overall is not None else None,
        "raw": raw,
        "error": problem,
    }


def _mean_score(records: Sequence[Mapping[str, Any]]) -> float | None:
    return sum(r["overall"] for r in records) / (10.0 * len(records)) if records else None


def _pass_rate(records: Sequence[Mapping[str, Any]], threshold: float) -> float | None:
    return sum(r["overall"] >= threshold for r in records) / len(records) if records else None


def score_trace(
    items: Sequence[TraceItem],
    records: Sequence[Mapping[str, Any]],
    *,
    pass_threshold: float = DEFAULT_PASS_THRESHOLD,
    on_failed: OnFailed = "raise",
) -> dict[str, float | int | None]:
    """IF-S / IF-M / IF (mean overall score / 10) and pass rates at ``pass_threshold`` (0-10)."""
    if not 0.0 < pass_threshold <= 10.0:
        raise ValueError(f"pass_threshold must be in (0, 10], got {pass_threshold}")
    if len(items) != len(records):
        raise ValueError(f"TRACE: {len(records)} judgements for {len(items)} items")
    pairs = list(zip(items, records))
    usable = split_failed(pairs, lambda p: p[1].get("overall") is not None, on_failed, "TRACE")
    if not usable:
        raise ValueError("TRACE: no usable judgements to score")
    single = [r for item, r in usable if not item.multi]
    multi = [r for item, r in usable if item.multi]
    every = [r for _, r in usable]
    return {
        "IF-S": _mean_score(single),
        "IF-M": _mean_score(multi),
        "IF": _mean_score(every),
        "IF-S_pass": _pass_rate(single, pass_threshold),
        "IF-M_pass": _pass_rate(multi, pass_threshold),
        "IF_pass": _pass_rate(every, pass_threshold),
        "pass_threshold": pass_threshold,
        "n_single": len(single),
        "n_multi": len(multi),
        "n_failed": len(pairs) - len(usable),
    }
