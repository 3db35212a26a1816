"""Source instructions for the builders and how their prompts are rendered.

An item is a conversation (optional base system prompt + history ending in a user turn)
plus its constraints. Prompts render the constraints as a numbered list, in the system
message (the RPO setting: rewriting constraints never touches the history) or appended to
the last user turn. Paraphrases are picked per (item, position), so two renderings of one
item (x and its rewrite, x1 and x2) differ only where the constraints differ.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ifpo.constraints import Constraint, ConstraintFormatError, free_text, parse_ifeval_record
from ifpo.constraints.parsing import parse_jsonl
from ifpo.data import synthetic
from ifpo.sampling.base import Messages, SampleRequest, derive_seed

CONSTRAINTS_HEADER = "Follow every constraint below."
STYLES = ("system", "user")


@dataclass(frozen=True)
class SourceItem:
    """One instruction to build preference data from."""

    id: str
    history: Messages  # user/assistant turns, ending with the user turn to answer
    constraints: tuple[Constraint, ...]
    system: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def last_user(self) -> str:
        return self.history[-1]["content"]


def render_prompt(item: SourceItem, constraints: Sequence[Constraint], style: str = "system") -> Messages:
    """The chat prompt for ``item`` carrying ``constraints`` (history kept verbatim)."""
    if style not in STYLES:
        raise ValueError(f"builder.prompt_style={style!r}; allowed: {', '.join(STYLES)}")
    lines = []
    for position, constraint in enumerate(constraints):
        text = constraint.render(random.Random(derive_seed(item.id, position, constraint.kind)))
        lines.append(f"{position + 1}. {text}")
    block = CONSTRAINTS_HEADER + "\n" + "\n".join(lines)
    history = [dict(m) for m in item.history]
    if style == "system":
        system = f"{item.system}\n{block}" if item.system else block
        return [{"role": "system", "content": system}, *history]
    history[-1]["content"] = f"{history[-1]['content']}\n\n{block}"
    return ([{"role": "system", "content": item.system}] if item.system else []) + history


def sample_request(item: SourceItem, constraints: Sequence[Constraint], style: str) -> SampleRequest:
    return SampleRequest(item.id, render_prompt(item, constraints, style), tuple(constraints), item.context)


def _messages(value: Any, source: str, line: int) -> tuple[str | None, Messages]:
    if not isinstance(value, list) or not value:
        raise ConstraintFormatError(
            "'messages' must be a non-empty list", source=source, line=line, field="messages"
        )
    system, history = None, []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ConstraintFormatError(
                "expected {role, content} with string content", source=source, line=line, field=where
            )
        role = message.get("role")
        if role == "system" and i == 0:
            system = message["content"]
        elif role in ("user", "assistant"):
            history.append({"role": role, "content": message["content"]})
        else:
            raise ConstraintFormatError(
                f"unexpected role {role!r} (a system message may only come first)",
                source=source,
                line=line,
                field=f"{where}.role",
            )
    if not history or history[-1]["role"] != "user":
        raise ConstraintFormatError(
            "the last message must be the user turn to answer", source=source, line=line, field="messages"
        )
    return system, history


def parse_item(record: Any, source: str, line: int, default_system: str | None) -> SourceItem:
    """IFEval record (+ optional ``messages`` and ``free_text_constraints``) -> SourceItem."""
    if isinstance(record, dict) and "messages" in record:
        system, history = _messages(record["messages"], source, line)
        record = {"prompt": history[-1]["content"], **record}
    else:
        system, history = None, []
    instruction = parse_ifeval_record(record, source=source, line=line)
    if not history:
        history = [{"role": "user", "content": instruction.prompt}]
    extra = record.get("free_text_constraints", [])
    if not isinstance(extra, list) or not all(isinstance(t, str) and t.strip() for t in extra):
        raise ConstraintFormatError(
            "'free_text_constraints' must be a list of non-empty strings",
            source=source,
            line=line,
            field="free_text_constraints",
        )
    constraints = instruction.constraints + tuple(free_text(t) for t in extra)
    if not constraints:
        raise ConstraintFormatError(
            "no constraints", source=source, line=line, field="instruction_id_list", reason="no_constraints"
        )
    item_id = instruction.id if instruction.id is not None else f"line-{line}"
    return SourceItem(item_id, history, constraints, system if system is not None else default_system)


def load_instructions(
    path: str | Path, on_error: str = "raise", default_system: str | None = None
) -> tuple[list[SourceItem], Counter[str]]:
    """Items of an instructions JSONL; bad lines raise (file, line, field) or are counted with
    on_error=skip."""
    seen: set[str] = set()

    def parse_unique(record: Any, source: str, line: int) -> SourceItem:
        item = parse_item(record, source, line, default_system)
        if item.id in seen:
            raise ConstraintFormatError(
                f"duplicate id {item.id!r}", source=source, line=line, field="key", reason="duplicate_id"
            )
        seen.add(item.id)
        return item

    items, reasons = parse_jsonl(path, parse_unique, on_error)  # type: ignore[arg-type]
    return items, Counter({f"bad_input:{reason}": n for reason, n in reasons.items()})


def synthetic_items(num_tasks: int, split: str, seed: int, system: str | None) -> list[SourceItem]:
    """Items from the synthetic task generator (topic kept for the synthetic writer sampler)."""
    return [
        SourceItem(
            id=task.uid,
            history=[{"role": "user", "content": task.task}],
            constraints=tuple(spec.constraint for spec in task.specs),
            system=system,
            context={"topic": task.topic},
        )
        for task in synthetic.generate_tasks(num_tasks, split, seed)
    ]
