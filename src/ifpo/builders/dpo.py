"""The DPO baseline: one pair per instruction, most- vs least-satisfying response."""

from __future__ import annotations

from collections.abc import Sequence

from ifpo.builders.stats import BuildStats


def dpo_choice(vectors: Sequence[Sequence[bool]], stats: BuildStats) -> tuple[int, int] | None:
    """(chosen, rejected) indices: most constraints met vs fewest (first on ties); None when all tie."""
    if len(vectors) < 2:
        stats.skip("fewer_than_two_responses")
        return None
    scores = [sum(v) for v in vectors]
    best, worst = scores.index(max(scores)), scores.index(min(scores))
    if scores[best] == scores[worst]:
        stats.skip("tie")
        return None
    return best, worst
