"""The one error type for bad input rows, and skip accounting, for every package.

`DataFormatError` names the file, line (or row) and field; `except DataFormatError` catches every
bad-data error in ifpo (the constraint parser's own, `ConstraintFormatError`, is a subclass).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class DataFormatError(ValueError):
    """A bad input row; the message names the file, line (or row) and field."""

    reason = "malformed_record"  # a short stable tag, for counting skips by reason

    def __init__(self, source: str, line: int, field_name: str, problem: str) -> None:
        self.source, self.line, self.field, self.problem = source, line, field_name, problem
        super().__init__(f"{source}:{line}: field {field_name!r}: {problem}")


@dataclass
class SkipCounter:
    """Counts rows skipped by reason, so nothing is ever dropped silently."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, where: str = "") -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return "no rows skipped"
        parts = [
            f"{reason}: {n} (first at {self.examples[reason]})" for reason, n in self.counts.most_common()
        ]
        return f"{self.total} rows skipped — " + "; ".join(parts)
