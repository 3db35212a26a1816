"""RPO pairs (arXiv 2505.22172): reverse the constraints the chosen response fails.

For two responses with judgement vectors v_i != v_j (Hamming distance g), the instruction
rewritten for y_i keeps the constraints y_i satisfies and reverses those it fails, so y_i
satisfies all of it and y_j fails g of it; the mirror pair does the same for y_j.
Constraints both fail are reversed on both sides. Pairs are kept when ``g > min_margin``
(strictly greater: the authors' g > 2 is ``min_margin=2``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ifpo.builders.stats import BuildStats
from ifpo.constraints import Constraint

Reverse = Callable[[Constraint], "Constraint | None"]


@dataclass(frozen=True)
class RPOPair:
    chosen: int  # index into the responses
    rejected: int
    margin: int
    constraints: tuple[Constraint, ...]  # the rewritten instruction's constraints


def unique_vectors(vectors: Sequence[Sequence[bool]], stats: BuildStats) -> list[int]:
    """Indices of the first response with each distinct judgement vector (duplicates counted)."""
    seen: dict[tuple[bool, ...], int] = {}
    for index, vector in enumerate(vectors):
        if tuple(vector) in seen:
            stats.skip("duplicate_judgement_vector")
        else:
            seen[tuple(vector)] = index
    return list(seen.values())


def rpo_pairs(
    constraints: Sequence[Constraint],
    vectors: Sequence[Sequence[bool]],
    reverse: Reverse,
    min_margin: int,
    stats: BuildStats,
    responses: Sequence[str] | None = None,
) -> list[RPOPair]:
    """Both directed pairs of every unordered pair of distinct vectors with g > min_margin.

    With ``responses``, checks (strict rules) that each chosen response satisfies every
    rule-checkable constraint of its rewritten instruction: a failure under an *exact*
    reverse is a bug and raises; under an approximate reverse the pair is skipped and counted.
    """
    keep = unique_vectors(vectors, stats)
    reversed_cache: dict[int, Constraint | None] = {}

    def reversed_at(k: int) -> Constraint | None:
        if k not in reversed_cache:
            reversed_cache[k] = reverse(constraints[k])
        return reversed_cache[k]

    pairs = []
    for a, i in enumerate(keep):
        for j in keep[a + 1:]:
            g = sum(x != y for x, y in zip(vectors[i], vectors[j]))
            if g <= min_margin:
                stats.skip("margin_at_most_min_margin", 2)
                continue
            for win, lose in ((i, j), (j, i)):
                rewritten = [
                    c if ok else reversed_at(k) for k, (c, ok) in enumerate(zip(constraints, vectors[win]))
                ]
                if any(c is None for c in rewritten):
                    stats.skip("no_reverse")
                    continue
                final = tuple(c for c in rewritten if c is not None)
                if responses is not None and not _chosen_fits(
                    constraints, vectors[win], final, responses[win], stats
                ):
                    continue
                pairs.append(RPOPair(win, lose, g, final))
    return pairs


def _chosen_fits(
    original: Sequence[Constraint],
    vector: Sequence[bool],
    rewritten: Sequence[Constraint],
    response: str,
    stats: BuildStats,
) -> bool:
    for before, ok, after in zip(original, vector, rewritten):
        if not after.checkable or after.check(response):
            continue
        if ok or before.reverse_exactness == "exact":
            raise AssertionError(
                f"chosen response fails {after!r} of its rewritten instruction "
                f"(from {before!r}, satisfied={ok}): {response[:200]!r}"
            )
        stats.skip("approximate_reverse_not_met")
        return False
    return True
