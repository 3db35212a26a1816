"""Mean and spread over the seeds of one group."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    mean: float
    std: float   # sample standard deviation over seeds (0 for a single run)
    n: int

    def text(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f} (n={self.n})" if self.n > 1 else f"{self.mean:.4f} (n=1)"


def spread(values: Iterable[float]) -> Spread | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    if not kept:
        return None
    return Spread(statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else 0.0, len(kept))


def curve_spread(curves: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, Spread]]:
    """Per step, mean and std over the runs that logged that step."""
    by_step: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in curve:
            by_step.setdefault(step, []).append(value)
    out = []
    for step in sorted(by_step):
        s = spread(by_step[step])
        if s is not None:
            out.append((step, s))
    return out
