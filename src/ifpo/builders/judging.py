"""Judgement vectors: rule-checkable constraints by ``Constraint.check`` (strict), free text by the LLM judge.

Rule-checkable constraints never reach the judge. Each response with free-text constraints
costs exactly one judge call, grading all of them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ifpo.constraints import REVERSE_RULES_PROMPT, Constraint, reverse_free_text
from ifpo.judge import JudgeClient, JudgeRequest, LLMConstraintReverser
from ifpo.sampling.base import Messages


@dataclass(frozen=True)
class JudgeJob:
    """Grade ``response`` (an answer to ``prompt``) on each of ``constraints``."""

    prompt: Messages
    constraints: tuple[Constraint, ...]
    response: str


def _instruction_text(prompt: Messages) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in prompt)


class ResponseJudge:
    """Turns (prompt, constraints, response) into one bool per constraint."""

    def __init__(self, client: JudgeClient | None = None) -> None:
        self.client = client

    def vectors(self, jobs: Sequence[JudgeJob]) -> list[tuple[bool, ...]]:
        """Judgement vectors in job order (free-text verdicts batched through ``judge_many``)."""
        rows: list[list[bool | None]] = []
        requests, where = [], []
        for index, job in enumerate(jobs):
            user_turn = next((m["content"] for m in reversed(job.prompt) if m["role"] == "user"), None)
            row = [c.check(job.response, prompt=user_turn) if c.checkable else None for c in job.constraints]
            free = [c.kwargs["text"] for c in job.constraints if not c.checkable]
            if free:
                if self.client is None:
                    raise ValueError(f"free-text constraints {free[:2]} need an LLM judge: pass judge=openai "
                                     "(judge.base_url=..., judge.model=...)")
                requests.append(JudgeRequest(_instruction_text(job.prompt), job.response, tuple(free)))
                where.append(index)
            rows.append(row)
        if requests:
            assert self.client is not None
            for index, judgement in zip(where, self.client.judge_many(requests, desc="judging free text")):
                verdicts = iter(judgement.satisfied or ())
                rows[index] = [v if v is not None else next(verdicts) for v in rows[index]]
        return [tuple(bool(v) for v in row) for row in rows]


def rules_system_prompt() -> str:
    """The library's reversal rules, for a system message (the constraint goes in the user turn)."""
    return REVERSE_RULES_PROMPT.format(constraint="(the constraint is given in the user message)")


class ConstraintReverser:
    """Rule-based reverse for checkable constraints; the LLM (rules prompt, cached) for free text."""

    def __init__(self, client: JudgeClient | None = None) -> None:
        self._llm = LLMConstraintReverser(client, rules_system_prompt()) if client is not None else None

    def __call__(self, constraint: Constraint) -> Constraint | None:
        if constraint.checkable:
            return constraint.reverse()
        if self._llm is None:
            return None  # counted by the builder as "no_reverse"
        return reverse_free_text(constraint, self._llm)
