"""Counts a build reports: records kept, skips by reason, the margin histogram."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BuildStats:
    """Additive counters; one per instruction is saved in the progress ledger, so a resumed run sums the
    same."""

    instructions: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    margins: Counter = field(default_factory=Counter)

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] += count

    def keep(self, margin: int | None = None) -> None:
        self.kept += 1
        if margin is not None:
            self.margins[str(margin)] += 1

    def add(self, other: BuildStats) -> None:
        self.instructions += other.instructions
        self.kept += other.kept
        self.skipped.update(other.skipped)
        self.margins.update(other.margins)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instructions": self.instructions,
            "kept": self.kept,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "margin_histogram": {k: self.margins[k] for k in sorted(self.margins, key=int)},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildStats:
        return cls(
            instructions=int(data.get("instructions", 0)),
            kept=int(data.get("kept", 0)),
            skipped=Counter(data.get("skipped", {})),
            margins=Counter(data.get("margin_histogram", {})),
        )

    def table(self, title: str) -> str:
        """A plain-text table for the terminal."""
        rows = [("instructions", self.instructions), ("records kept", self.kept)]
        rows += [(f"skipped: {reason}", n) for reason, n in sorted(self.skipped.items())]
        rows += [(f"margin {k}", self.margins[k]) for k in sorted(self.margins, key=int)]
        width = max(len(name) for name, _ in rows)
        lines = [title, "-" * (width + 10)] + [f"{name:<{width}}  {value:>8}" for name, value in rows]
        return "\n".join(lines)
