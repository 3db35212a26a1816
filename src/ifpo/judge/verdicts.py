"""The per-constraint judging prompt, its answer parser, and the judgement record.

One judge call grades every constraint of one response. We ask for strict JSON
and parse leniently (code fences, prose around the object, "yes"/"no" strings),
but insist that every constraint gets exactly one verdict: anything less is a
malformed answer, which the client retries rather than guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

JUDGE_SYSTEM_PROMPT = (
    "You are a meticulous, impartial grader of instruction following. "
    "Judge only whether the response satisfies each listed constraint; ignore style you were not asked "
    "about. "
    "Answer with a single JSON object and nothing else."
)

_ANSWER_FORMAT = (
    "Return exactly this JSON shape, one entry per constraint, in order:\n"
    '{"results": [{"id": 1, "reason": "<one or two sentences>", "satisfied": true}, ...]}\n'
    '"satisfied" must be the JSON literal true or false.'
)


class MalformedAnswer(ValueError):
    """The judge's text could not be read as one verdict per constraint."""


@dataclass(frozen=True)
class JudgeRequest:
    """What one judge call grades: a response to an instruction against constraints."""

    instruction: str
    response: str
    constraints: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.constraints:
            raise ValueError("JudgeRequest needs at least one constraint to grade")
        object.__setattr__(self, "constraints", tuple(self.constraints))


@dataclass(frozen=True)
class ConstraintJudgement:
    """Per-constraint verdicts for one response, or a recorded failure (``error`` set)."""

    constraints: tuple[str, ...]
    satisfied: tuple[bool, ...] | None
    reasons: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, constraints: Sequence[str], error: str) -> ConstraintJudgement:
        return cls(constraints=tuple(constraints), satisfied=None, reasons=(), error=error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "constraints": list(self.constraints),
            "satisfied": None if self.satisfied is None else list(self.satisfied),
            "reasons": list(self.reasons),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConstraintJudgement:
        satisfied = data.get("satisfied")
        return cls(
            constraints=tuple(data["constraints"]),
            satisfied=None if satisfied is None else tuple(bool(v) for v in satisfied),
            reasons=tuple(data.get("reasons", ())),
            error=data.get("error"),
        )


def build_judge_messages(request: JudgeRequest) -> list[dict[str, str]]:
    """Chat messages asking for one JSON verdict per numbered constraint."""
    numbered = "\n".join(f"{i}. {text}" for i, text in enumerate(request.constraints, start=1))
    user = (
        f"## Instruction\n{request.instruction}\n\n"
        f"## Response to grade\n{request.response}\n\n"
        f"## Constraints ({len(request.constraints)})\n{numbered}\n\n"
        f"{_ANSWER_FORMAT}"
    )
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_TRUE_WORDS = {"true", "yes", "y", "pass", "passed", "satisfied", "1"}
_FALSE_WORDS = {"false", "no", "n", "fail", "failed", "not satisfied", "unsatisfied", "0"}


def _first_json_value(text: str) -> Any:
    """The first JSON object or array in ``text``, tolerating fences and surrounding prose."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start, char in enumerate(candidate):
            if char not in "{[":
                continue
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except ValueError:
                continue
            return value
    raise MalformedAnswer(f"no JSON object found in judge answer: {text[:200]!r}")


def _as_bool(value: Any, position: int) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise MalformedAnswer(f"verdict {position}: 'satisfied' is not a boolean: {value!r}")


def parse_verdicts(text: str, n_constraints: int) -> tuple[tuple[bool, ...], tuple[str, ...]]:
    """Read ``n_constraints`` (satisfied, reason) pairs from a judge answer or raise MalformedAnswer."""
    value = _first_json_value(text)
    entries = value.get("results") if isinstance(value, dict) else value
    if not isinstance(entries, list):
        raise MalformedAnswer("judge answer has no 'results' list")
    if len(entries) != n_constraints:
        raise MalformedAnswer(f"judge answer has {len(entries)} verdicts for {n_constraints} constraints")
    verdicts: dict[int, tuple[bool, str]] = {}
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise MalformedAnswer(f"verdict {position} is not an object: {entry!r}")
        raw_id = entry.get("id", position)
        try:
            index = int(raw_id)
        except (TypeError, ValueError):
            raise MalformedAnswer(f"verdict {position}: 'id' is not an integer: {raw_id!r}") from None
        if not 1 <= index <= n_constraints or index in verdicts:
            raise MalformedAnswer(f"verdict {position}: id {index} is out of range or repeated")
        if "satisfied" not in entry:
            raise MalformedAnswer(f"verdict {position}: missing 'satisfied'")
        reason = entry.get("reason", "")
        verdicts[index] = (
            _as_bool(entry["satisfied"], position),
            reason if isinstance(reason, str) else str(reason),
        )
    ordered = [verdicts[i] for i in range(1, n_constraints + 1)]
    return tuple(v for v, _ in ordered), tuple(r for _, r in ordered)
