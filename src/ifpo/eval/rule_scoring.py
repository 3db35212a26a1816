"""Rule-based IFEval / IFBench scoring with the reference semantics.

Per example: strict and loose ``follow_instruction_list`` / ``follow_all_instructions``
exactly as IFEval's evaluation tool computes them (an empty response fails every
instruction). Aggregates: prompt-level and instruction-level accuracy, strict
and loose, and accuracy per instruction id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ifpo.constraints import ConstraintError, ConstraintFormatError, Instruction
from ifpo.io.jsonl import BadLine, read_jsonl


@dataclass(frozen=True)
class ExampleScore:
    """One prompt's verdicts in one mode (strict or loose), named as in IFEval's output."""

    prompt: str
    instruction_id_list: list[str]
    response: str
    follow_instruction_list: list[bool]

    @property
    def follow_all_instructions(self) -> bool:
        return all(self.follow_instruction_list)


@dataclass(frozen=True)
class KindAccuracy:
    """Accuracy of one instruction id across all prompts that carry it."""

    count: int
    strict: float
    loose: float


@dataclass(frozen=True)
class ScoreReport:
    """Per-example results and the aggregate accuracies (fractions in [0, 1])."""

    strict: list[ExampleScore]
    loose: list[ExampleScore]
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def prompt_strict(self) -> float:
        return _mean(e.follow_all_instructions for e in self.strict)

    @property
    def prompt_loose(self) -> float:
        return _mean(e.follow_all_instructions for e in self.loose)

    @property
    def instruction_strict(self) -> float:
        return _mean(v for e in self.strict for v in e.follow_instruction_list)

    @property
    def instruction_loose(self) -> float:
        return _mean(v for e in self.loose for v in e.follow_instruction_list)

    @property
    def average(self) -> float:
        """Mean of the four accuracies (the single number Multi-IF reports)."""
        return (self.prompt_strict + self.prompt_loose + self.instruction_strict + self.instruction_loose) / 4

    def per_instruction(self) -> dict[str, KindAccuracy]:
        """Accuracy per instruction id, sorted by id."""
        return per_instruction_accuracy(self.strict, self.loose)

    def summary(self) -> dict[str, float]:
        return {
            "prompt_strict": self.prompt_strict,
            "prompt_loose": self.prompt_loose,
            "instruction_strict": self.instruction_strict,
            "instruction_loose": self.instruction_loose,
        }


def _mean(values: Iterable[bool]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def per_instruction_accuracy(
    strict: Sequence[ExampleScore], loose: Sequence[ExampleScore]
) -> dict[str, KindAccuracy]:
    """The per-kind accuracy table (count, strict, loose) keyed by instruction id."""
    counts: Counter[str] = Counter()
    strict_hits: Counter[str] = Counter()
    loose_hits: Counter[str] = Counter()
    for s_example, l_example in zip(strict, loose):
        for kind, s_ok, l_ok in zip(
            s_example.instruction_id_list,
            s_example.follow_instruction_list,
            l_example.follow_instruction_list,
        ):
            counts[kind] += 1
            strict_hits[kind] += s_ok
            loose_hits[kind] += l_ok
    return {
        kind: KindAccuracy(counts[kind], strict_hits[kind] / counts[kind], loose_hits[kind] / counts[kind])
        for kind in sorted(counts)
    }


def score_example(instruction: Instruction, response: str) -> tuple[ExampleScore, ExampleScore]:
    """Strict and loose verdicts for one response; free-text constraints are not allowed here."""
    for constraint in instruction.constraints:
        if not constraint.checkable:
            raise ConstraintError(
                f"prompt {instruction.id or instruction.prompt[:60]!r} has a {constraint.kind!r} constraint; "
                "rule scoring needs checkable kinds only",
                reason="not_checkable",
            )
    ids = instruction.instruction_ids
    strict = [bool(v) for v in instruction.check(response, loose=False)]
    loose = [bool(v) for v in instruction.check(response, loose=True)]
    return ExampleScore(instruction.prompt, ids, response, strict), ExampleScore(
        instruction.prompt, ids, response, loose
    )


def _score(
    instructions: Sequence[Instruction],
    responses: Mapping[str, str],
    benchmark: str,
    on_missing: Literal["raise", "skip"],
) -> ScoreReport:
    if on_missing not in ("raise", "skip"):
        raise ValueError(f"on_missing must be 'raise' or 'skip', got {on_missing!r}")
    strict: list[ExampleScore] = []
    loose: list[ExampleScore] = []
    skipped: Counter[str] = Counter()
    for instruction in instructions:
        wrong = [c.kind for c in instruction.constraints if c.checkable and c.spec.benchmark != benchmark]
        if wrong:
            raise ConstraintError(
                f"prompt {instruction.id or instruction.prompt[:60]!r} uses non-{benchmark} kinds {wrong}",
                reason="wrong_benchmark",
            )
        if instruction.prompt not in responses:
            if on_missing == "raise":
                raise ConstraintFormatError(
                    f"no response for prompt {instruction.id or ''} {instruction.prompt[:80]!r}",
                    field="response",
                    reason="missing_response",
                )
            skipped["missing_response"] += 1
            continue
        s, lo = score_example(instruction, responses[instruction.prompt])
        strict.append(s)
        loose.append(lo)
    return ScoreReport(strict, loose, skipped)


def score_ifeval(
    instructions: Sequence[Instruction],
    responses: Mapping[str, str],
    on_missing: Literal["raise", "skip"] = "raise",
) -> ScoreReport:
    """Score IFEval instructions against ``responses`` (prompt -> response text)."""
    return _score(instructions, responses, "ifeval", on_missing)


def score_ifbench(
    instructions: Sequence[Instruction],
    responses: Mapping[str, str],
    on_missing: Literal["raise", "skip"] = "raise",
) -> ScoreReport:
    """Score IFBench instructions (IFBench registry) against ``responses``."""
    return _score(instructions, responses, "ifbench", on_missing)


def load_responses_jsonl(path: str | Path) -> dict[str, str]:
    """Read ``{"prompt", "response"}`` lines (the reference tool's input) into prompt -> response.

    A prompt listed twice with different responses is an error (which one to score would be a guess).
    """
    source = str(path)
    responses: dict[str, str] = {}
    for line_no, record in read_jsonl(path, check_unicode=False):
        if isinstance(record, BadLine):
            raise ConstraintFormatError(record.problem, source=source, line=line_no, reason=record.reason)
        if not isinstance(record, dict):
            raise ConstraintFormatError(
                "record must be a JSON object", source=source, line=line_no, reason="bad_type"
            )
        for name in ("prompt", "response"):
            if not isinstance(record.get(name), str):
                raise ConstraintFormatError(
                    f"{name!r} must be a string",
                    source=source,
                    line=line_no,
                    field=name,
                    reason="missing_field" if name not in record else "bad_type",
                )
        prompt, response = record["prompt"], record["response"]
        if prompt in responses and responses[prompt] != response:
            raise ConstraintFormatError(
                "prompt repeated with a different response",
                source=source,
                line=line_no,
                field="prompt",
                reason="duplicate_prompt",
            )
        responses[prompt] = response
    return responses
