"""SysBench (Qin et al., 2024, arXiv 2408.10943): system-message following over 5-turn chats.

The released ``datas/system_benchmark_eval_datas.json`` (PKU-Baichuan-MLSystemLab/SysBench) is
one JSON array of 500 dialogues:

- ``system_id``      int     dialogue id
- ``system_prompt``  str     the system message (also ``messages[0]``)
- ``messages``       list    ``system``, then ``user`` / ``assistant`` pairs; the assistant
                             contents are the reference answers
- ``prompt_infos``   dict    keyed by each user message's exact text ->
                             ``{"alignment": "align"|"misalign", "criteria": {"1": {"criteria_id": 1,
                             "criteria_content": str, "criteria_type": str}, ...}}``
- ``rounds_related`` bool    (and ``领域``, ``场景``: domain and scene, kept for reports)

Inference (``eval_system_bench.py``): turn k is answered from the system message and the
earlier turns -- the model's own answers by default, or the reference answers
(``history="reference"``, ``eval_system_bench_with_gt.py``), where generation *and* judging
see the reference history.

Judging: one call per turn with the authors' Chinese prompt (``utils.get_eval_pattern``): the
system prompt, the earlier rounds, the current round and the criteria as
``"<id>. <content> | <type>"``. The judge answers a fenced JSON object with ``评判理由`` and
``评判结果`` (criterion id -> ``是``/``否``); the ids must be exactly the criteria's ids. Judge:
``gpt-4o-2024-05-13`` at temperature 0, re-asked at temperature 0.5 when the answer does not parse.

Metrics (``utils.analysis_eval_results`` and ``plot/tab2..tab6``): a criterion is satisfied when
its verdict is ``是``; a turn is usable ("是否可用") when no verdict is ``否``.

- CSR: satisfied criteria / all criteria (pooled), also per ``criteria_type``.
- ISR: usable turns / all turns, also per ``alignment``.
- SSR: per dialogue, the number of usable turns in a row from the first, / 5; averaged.
"""

from __future__ import annotations

import ast
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ifpo.eval.judged import LoadedItems, OnBadRow, OnFailed, load_rows, non_empty_text, require, split_failed

History = Literal["model", "reference"]
TURN_NUMBER = 5  # the released dialogues all have five user turns; SSR divides by it


@dataclass(frozen=True)
class Criterion:
    id: int
    content: str
    type: str


@dataclass(frozen=True)
class SysBenchItem:
    id: Any
    system_prompt: str
    user_turns: tuple[str, ...]
    references: tuple[str | None, ...]
    criteria: tuple[tuple[Criterion, ...], ...]  # per turn
    alignments: tuple[str, ...]  # per turn
    rounds_related: bool | None = None

    def conversation(self, turn: int, earlier_answers: Sequence[str]) -> list[dict[str, str]]:
        """System message, turns before ``turn`` answered with ``earlier_answers``, then the user's turn."""
        messages = [{"role": "system", "content": self.system_prompt}]
        for t in range(turn):
            messages.append({"role": "user", "content": self.user_turns[t]})
            messages.append({"role": "assistant", "content": earlier_answers[t]})
        messages.append({"role": "user", "content": self.user_turns[turn]})
        return messages


def _turn_criteria(
    infos: Mapping[str, Any], turn: int, user_text: str, error: Callable[[str, str], Exception]
) -> tuple[tuple[Criterion, ...], str]:
    where = f"prompt_infos[<user turn {turn + 1}>]"
    if user_text not in infos:
        raise error(where, f"no entry for user turn {turn + 1} ({user_text[:40]!r}...)")
    info = infos[user_text]
    criteria = info.get("criteria") if isinstance(info, dict) else None
    if not isinstance(criteria, dict) or not criteria:
        raise error(f"{where}.criteria", "expected a non-empty object of numbered criteria")
    parsed = []
    for key, entry in criteria.items():  # the file's order is the order the judge sees
        field = f"{where}.criteria[{key!r}]"
        if not isinstance(entry, dict):
            raise error(field, "expected an object")
        content, kind, cid = (
            entry.get("criteria_content"),
            entry.get("criteria_type"),
            entry.get("criteria_id"),
        )
        if not isinstance(content, str) or not content.strip():
            raise error(f"{field}.criteria_content", "must be a non-empty string")
        if not isinstance(kind, str):
            raise error(f"{field}.criteria_type", "must be a string")
        try:
            number = int(cid if cid is not None else key)
        except (TypeError, ValueError):
            raise error(f"{field}.criteria_id", f"must be an integer, got {cid!r}") from None
        parsed.append(Criterion(number, content, kind))
    alignment = info.get("alignment", "unknown")
    return tuple(parsed), alignment if isinstance(alignment, str) else "unknown"


def _parse_row(row: dict[str, Any], error: Callable[[str, str], Exception]) -> SysBenchItem:
    item_id = require(row, "system_id", (int, str), error)
    system_prompt = non_empty_text(row, "system_prompt", error)
    messages = require(row, "messages", list, error)
    infos = require(row, "prompt_infos", dict, error)
    users: list[str] = []
    references: list[str | None] = []
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise error(f"messages[{n}]", "expected {'role': ..., 'content': str}")
        role = message.get("role")
        if role == "system" and n == 0:
            system_prompt = message["content"]  # what the official inference sends
        elif role == "user":
            users.append(message["content"])
            references.append(None)
        elif role == "assistant" and users and references[-1] is None:
            references[-1] = message["content"]
        else:
            raise error(
                f"messages[{n}].role", f"unexpected {role!r} here (expected alternating user/assistant)"
            )
    if not users:
        raise error("messages", "has no user turn")
    parsed = [_turn_criteria(infos, t, text, error) for t, text in enumerate(users)]
    related = row.get("rounds_related")
    return SysBenchItem(
        item_id,
        system_prompt,
        tuple(users),
        tuple(references),
        tuple(c for c, _ in parsed),
        tuple(a for _, a in parsed),
        related if isinstance(related, bool) else None,
    )


def load_sysbench(
    path: str | os.PathLike[str], *, on_bad_row: OnBadRow = "raise"
) -> LoadedItems[SysBenchItem]:
    """Dialogues of a SysBench file in the released layout (module docstring)."""
    return load_rows(path, _parse_row, on_bad_row=on_bad_row)


# ------------------------------------------------------------------------------ judge prompt
# The authors' prompt (utils.get_eval_pattern), kept in its language and layout: it is the
# benchmark's scoring instrument.
_HEAD = """
# 背景与目标
你现在是一个大模型结果评估专家。以下，你将会面对一个大模型system prompt遵循能力评估任务。
我将会给出你对应的system prompt、历史对话、当前轮次的问题、和当前轮次的回答
需要你准确判断当前轮次的回答是否合格。
为了让你的评判足够准确，我还将会给出评判细则，需要你准确判断并告知评判细则当中每一条约束的遵循情况。

# 对话信息
## system prompt
<system prompt>
{system_prompt}
</system prompt>

## 历史对话轮次

"""
_ROUND = """
<round-{n}>
<role:>
user
</role>
<content>
{user}
</content>
<role:>assistant</role>
<content>
{assistant}
</content>
</round-{n}>

"""
_CURRENT = """
## 当前待评估的对话轮次
<role:>
user
</role>
<content>
{user}
</content>

<role:>
assistant
</role>
<content>
{assistant}
</content>

# 评判细则
<评判细则>
{criteria}
</评判细则>
"""
_TAIL = """
请你认真阅读上述system prompt设定与历史对话轮次，并严格以评判细则为评判标准，针对评判细则当中的逐条要求，判断当前对话轮次的回答是否遵循。
请以json格式回答，包含两个字段：评判理由、评判结果（评判结果为一个dict，dict的key评判细则的序号，value为对应的评判结果（是/否））
输出格式如下：
'''json
{
  "评判理由": "……",
  "评判结果": {
    1: "……",
    ……
  }
}
'''

"""  # noqa: E501 (the authors' judge prompt, verbatim)


def judge_prompt(item: SysBenchItem, turn: int, history: Sequence[str], answer: str) -> str:
    """The authors' judge prompt for ``answer`` to user turn ``turn`` after ``history`` answers."""
    text = _HEAD.format(system_prompt=item.system_prompt)
    for t in range(turn):
        text += _ROUND.format(n=t + 1, user=item.user_turns[t], assistant=history[t])
    criteria = "\n".join(f"{c.id}. {c.content} | {c.type}" for c in item.criteria[turn])
    text += _CURRENT.format(user=item.user_turns[turn], assistant=answer, criteria=criteria)
    return text + _TAIL


_FENCE = re.compile(r"^\s*(?:```|''')\s*(?:json)?\s*(.*?)\s*(?:```|''')?\s*$", re.DOTALL)


def parse_verdicts(answer: str, criteria: Sequence[Criterion]) -> tuple[dict[str, str], str]:
    """(criterion id -> verdict, reason) from a judge answer; ValueError when the ids do not match.

    The authors ``eval`` the text between the fences (a Python dict literal: its keys may be bare
    integers); ``ast.literal_eval`` reads the same literals without executing anything.
    """
    match = _FENCE.match(answer.strip())
    body = match.group(1) if match else answer.strip()
    try:
        value = ast.literal_eval(body)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"judge answer is not a dict literal: {type(exc).__name__}") from None
    if not isinstance(value, dict) or "评判理由" not in value or not isinstance(value.get("评判结果"), dict):
        raise ValueError("judge answer lacks 评判理由 / 评判结果")
    try:
        verdicts = {str(int(k)): str(v) for k, v in value["评判结果"].items()}
    except (TypeError, ValueError):
        raise ValueError("评判结果 keys must be criterion numbers") from None
    expected = {str(c.id) for c in criteria}
    if set(verdicts) != expected:
        raise ValueError(f"评判结果 has ids {sorted(verdicts)}, expected {sorted(expected)}")
    return verdicts, str(value["评判理由"])


def judge_record(raw: str, parsed: tuple[dict[str, str], str] | None, problem: str | None) -> dict[str, Any]:
    verdicts, reason = parsed if parsed is not None else (None, None)
    return {"verdicts": verdicts, "reason": reason, "raw": raw, "error": problem}


# ---------------------------------------------------------------------------------- scoring
def score_sysbench(
    items: Sequence[SysBenchItem],
    records: Sequence[Sequence[Mapping[str, Any]]],
    *,
    on_failed: OnFailed = "raise",
) -> dict[str, float | int]:
    """CSR / ISR / SSR (0-1) plus per-type CSR and per-alignment ISR; ``records`` per item per turn."""
    if len(items) != len(records):
        raise ValueError(f"SysBench: {len(records)} judged dialogues for {len(items)} items")
    pairs = list(zip(items, records))
    usable = split_failed(
        pairs, lambda p: all(r.get("verdicts") is not None for r in p[1]), on_failed, "SysBench"
    )
    if not usable:
        raise ValueError("SysBench: no usable judgements to score")
    by_type_all: Counter[str] = Counter()
    by_type_ok: Counter[str] = Counter()
    by_align_all: Counter[str] = Counter()
    by_align_ok: Counter[str] = Counter()
    turns = usable_turns = 0
    streaks = []
    for item, turn_records in usable:
        streak, unbroken = 0, True
        for turn, record in enumerate(turn_records):
            verdicts = record["verdicts"]
            for criterion in item.criteria[turn]:
                by_type_all[criterion.type] += 1
                by_type_ok[criterion.type] += verdicts[str(criterion.id)] == "是"
            ok = "否" not in verdicts.values()
            turns += 1
            usable_turns += ok
            by_align_all[item.alignments[turn]] += 1
            by_align_ok[item.alignments[turn]] += ok
            if ok and unbroken:
                streak += 1
            else:
                unbroken = False
        streaks.append(streak)
    metrics: dict[str, float | int] = {
        "CSR": sum(by_type_ok.values()) / sum(by_type_all.values()),
        "ISR": usable_turns / turns,
        "SSR": sum(streaks) / (len(usable) * TURN_NUMBER),
        "SSR_turns": sum(streaks) / len(usable),
    }
    metrics.update({f"CSR_{kind}": by_type_ok[kind] / n for kind, n in sorted(by_type_all.items())})
    metrics.update({f"ISR_{align}": by_align_ok[align] / n for align, n in sorted(by_align_all.items())})
    metrics.update({"n": len(usable), "n_turns": turns, "n_failed": len(pairs) - len(usable)})
    return metrics
