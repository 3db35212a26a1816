"""SysBench (Qin et al., 2024, arXiv 2408.10943): system-message following over multi-turn chats.

Expected file (the published ``datas/system_benchmark_eval_datas.json``): a JSON array
(or JSONL) of conversations with

- ``system_id``      int or str   conversation id
- ``system_prompt``  str          the system message
- ``messages``       list         ``{"role", "content"}`` dicts: an optional leading
                                  ``system`` message, then ``user`` turns, each optionally
                                  followed by a reference ``assistant`` answer
- ``prompt_infos``   dict         keyed by each user message's exact text ->
                                  ``{"criteria": {"1": {"criteria_content": str, ...}, ...}}``

Judging: one call per turn grades all of that turn's criteria. The judge sees the
system message and the earlier turns with the *model's own* answers (as at inference),
or the reference answers with ``history="reference"``.

Metrics (our reading of the paper and its analysis script):

- CSR: satisfied criteria / all criteria, pooled over every turn (micro average).
- ISR: turns whose every criterion is satisfied / all turns.
- SSR: for each conversation, the number of consecutive fully satisfied turns counted
  from the first turn, divided by that conversation's number of turns (5 in the
  published data, i.e. "/ 5"), averaged over conversations. ``SSR_turns`` reports the
  un-normalised mean count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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

History = Literal["model", "reference"]


@dataclass(frozen=True)
class SysBenchItem:
    id: Any
    system_prompt: str
    user_turns: tuple[str, ...]
    references: tuple[str | None, ...]
    criteria: tuple[tuple[str, ...], ...]  # per turn


@dataclass(frozen=True)
class SysBenchJudgement:
    id: Any
    turns: tuple[ConstraintJudgement, ...]

    @property
    def ok(self) -> bool:
        return all(judgement_ok(t) for t in self.turns)


def _turn_criteria(
    infos: Any, turn: int, user_text: str, error: Callable[[str, str], Exception]
) -> tuple[str, ...]:
    where = f"prompt_infos[<user turn {turn + 1}>]"
    if user_text not in infos:
        raise error(where, f"no entry for user turn {turn + 1} ({user_text[:40]!r}...)")
    info = infos[user_text]
    criteria = info.get("criteria") if isinstance(info, dict) else None
    if not isinstance(criteria, dict) or not criteria:
        raise error(f"{where}.criteria", "expected a non-empty object of numbered criteria")
    texts = []
    for key in sorted(
        criteria, key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0, str(k))
    ):
        entry = criteria[key]
        content = entry.get("criteria_content") if isinstance(entry, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise error(f"{where}.criteria[{key!r}].criteria_content", "must be a non-empty string")
        texts.append(content.strip())
    return tuple(texts)


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
            continue
        if role == "user":
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
    criteria = tuple(_turn_criteria(infos, t, text, error) for t, text in enumerate(users))
    return SysBenchItem(item_id, system_prompt, tuple(users), tuple(references), criteria)


def load_sysbench(
    path: str | os.PathLike[str], *, on_bad_row: OnBadRow = "raise"
) -> LoadedItems[SysBenchItem]:
    """Conversations from a SysBench file (layout in the module docstring)."""
    return load_rows(path, _parse_row, on_bad_row=on_bad_row)


def _turn_instruction(item: SysBenchItem, turn: int, earlier_answers: Sequence[str]) -> str:
    parts = [f"[System message]\n{item.system_prompt}"]
    if turn:
        history = "\n\n".join(
            f"User: {item.user_turns[t]}\nAssistant: {earlier_answers[t]}" for t in range(turn)
        )
        parts.append(f"[Earlier turns]\n{history}")
    parts.append(f"[Current user message -- grade the assistant's reply to this]\n{item.user_turns[turn]}")
    return "\n\n".join(parts)


def judge_sysbench(
    items: Sequence[SysBenchItem],
    responses: Mapping[Any, Sequence[str]] | Sequence[Sequence[str]],
    client: JudgeClient,
    *,
    history: History = "model",
    on_error: OnError = "raise",
) -> list[SysBenchJudgement]:
    """Judge every turn of every conversation; ``responses`` holds one answer per user turn."""
    if history not in ("model", "reference"):
        raise ValueError(f"history must be 'model' or 'reference', got {history!r}")
    per_item = align_responses([item.id for item in items], responses, "SysBench")
    requests: list[JudgeRequest] = []
    for item, answers in zip(items, per_item):
        if isinstance(answers, str) or len(answers) != len(item.user_turns):
            raise ValueError(
                f"SysBench item {item.id!r}: expected a list of {len(item.user_turns)} turn responses, "
                f"got {answers!r:.80}"
            )
        if history == "reference":
            if any(ref is None for ref in item.references):
                raise ValueError(f"SysBench item {item.id!r} lacks reference answers for history='reference'")
            context: Sequence[str] = item.references  # type: ignore[assignment]
        else:
            context = answers
        for turn, answer in enumerate(answers):
            requests.append(JudgeRequest(_turn_instruction(item, turn, context), answer, item.criteria[turn]))
    flat = client.judge_many(requests, on_error=on_error, desc="SysBench judge")
    result, start = [], 0
    for item in items:
        end = start + len(item.user_turns)
        result.append(SysBenchJudgement(item.id, tuple(flat[start:end])))
        start = end
    return result


def score_sysbench(
    judgements: Sequence[SysBenchJudgement], *, on_failed: OnFailed = "raise"
) -> dict[str, float]:
    """CSR, ISR, SSR (and SSR_turns); a conversation with any failed turn is skipped whole if asked."""
    usable = split_failed(judgements, lambda j: j.ok, on_failed, "SysBench")
    if not usable:
        raise ValueError("SysBench: no usable judgements to score")
    satisfied = total = full_turns = turns = 0
    streak_rates, streaks = [], []
    for conversation in usable:
        streak, broken = 0, False
        for turn in conversation.turns:
            flags = turn.satisfied or ()
            satisfied += sum(flags)
            total += len(flags)
            turns += 1
            if all(flags):
                full_turns += 1
                streak += 0 if broken else 1
            else:
                broken = True
        streaks.append(streak)
        streak_rates.append(streak / len(conversation.turns))
    return {
        "CSR": satisfied / total,
        "ISR": full_turns / turns,
        "SSR": sum(streak_rates) / len(usable),
        "SSR_turns": sum(streaks) / len(usable),
        "n": len(usable),
        "n_turns": turns,
        "n_failed": len(judgements) - len(usable),
    }
