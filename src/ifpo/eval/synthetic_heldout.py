"""The project's synthetic held-out set, rule-scored per constraint kind.

Held-out tasks use task templates disjoint from training (``ifpo.data.synthetic``) and
constraints written with IFEval ids, so the IFEval checkers grade them. Prompts are the
system-message form training uses. Scoring goes example by example (not keyed by prompt
text, which can repeat across tasks with the same topic and template).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ifpo.constraints import Instruction, parse_ifeval_record
from ifpo.data.synthetic import Task, generate_tasks
from ifpo.eval.rule_scoring import ScoreReport, score_example
from ifpo.models.generation import Generator


@dataclass(frozen=True)
class HeldoutExample:
    """One held-out task: its id, chat prompt and the parsed constraints to check."""

    key: str
    messages: list[dict[str, str]]
    instruction: Instruction


def _example(task: Task, seed: int) -> HeldoutExample:
    messages = task.messages(None, random.Random(f"{seed}-{task.uid}"))
    record = {
        "key": task.uid,
        "prompt": messages[-1]["content"],
        "instruction_id_list": [s.kind for s in task.specs],
        "kwargs": [dict(s.kwargs) for s in task.specs],
    }
    return HeldoutExample(task.uid, messages, parse_ifeval_record(record, source="synthetic heldout"))


def heldout_examples(num_examples: int, seed: int = 0) -> list[HeldoutExample]:
    """The first ``num_examples`` held-out tasks for ``seed`` (same seed, same examples)."""
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1, got {num_examples}")
    return [_example(task, seed) for task in generate_tasks(num_examples, "heldout", seed)]


def score_heldout(examples: Sequence[HeldoutExample], responses: Mapping[str, str]) -> ScoreReport:
    """Strict/loose scores of ``responses`` (example key -> text); a missing key is an error."""
    missing = [e.key for e in examples if e.key not in responses]
    if missing:
        raise KeyError(f"synthetic heldout: no response for {len(missing)} example(s), e.g. {missing[0]!r}")
    pairs = [score_example(e.instruction, responses[e.key]) for e in examples]
    return ScoreReport([s for s, _ in pairs], [lo for _, lo in pairs])


def evaluate_heldout(
    generator: Generator, num_examples: int, seed: int = 0
) -> tuple[list[HeldoutExample], dict[str, str], ScoreReport]:
    """Generate for the held-out subset and score it: (examples, responses by key, report)."""
    examples = heldout_examples(num_examples, seed)
    texts = generator.generate([e.messages for e in examples], desc="synthetic heldout")
    responses = {e.key: t for e, t in zip(examples, texts)}
    return examples, responses, score_heldout(examples, responses)


def heldout_metrics(report: ScoreReport, prefix: str = "heldout") -> dict[str, Any]:
    """Flat metric names for loggers: the four accuracies and strict accuracy per constraint kind."""
    metrics = {f"{prefix}/{name}": value for name, value in report.summary().items()}
    for kind, row in report.per_instruction().items():
        metrics[f"{prefix}/kind/{kind}"] = row.strict
    return metrics
