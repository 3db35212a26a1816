"""IOPO x2 construction (arXiv 2411.06208), two ways.

``edit`` (the paper's): add / delete / revise x1's constraints so y1 violates x2, then sample
y2 for x2. A delete alone cannot make y1 (which meets all of x1) fail x2, so every accepted
x2 must contain at least one checkable constraint y1 fails; deletes only ride along with an
add or a revise. IFEval's ``conflicts()`` is respected for every new constraint.

``reverse`` (RPO's idea applied to IOPO): from two answers to x1, y1 meeting all of it and y2
failing some of it, x2 is x1 with the constraints y2 fails replaced by their exact reverses.
No second sampling round is needed, and the quad holds by construction (y1 meets x1, y2 meets
x2, each fails the other's instruction); :func:`reversal_quad` still re-checks all four with
the rule checkers, because a reverse is only as exact as its table entry.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ifpo.builders.stats import BuildStats
from ifpo.constraints import Constraint, conflicts

OPS = ("add", "delete", "revise")
X2_MODES = ("edit", "reverse")
Reverse = Callable[[Constraint], "Constraint | None"]


def _fits(candidate: Constraint, others: Sequence[Constraint]) -> bool:
    return candidate not in others and not any(conflicts(candidate.kind, o.kind) for o in others)


def _apply(op: str, current: list[Constraint], pool: Sequence[Constraint], rng: random.Random) -> bool:
    """Apply one op in place; False when it is not applicable."""
    if op == "delete":
        if len(current) < 2:
            return False
        del current[rng.randrange(len(current))]
        return True
    if op == "add":
        options = [c for c in pool if c.checkable and _fits(c, current)]
        if not options:
            return False
        current.append(rng.choice(options))
        return True
    order = list(range(len(current)))
    rng.shuffle(order)
    for index in order:
        if not current[index].checkable:
            continue
        revised = current[index].revise(rng)
        if revised is not None and _fits(revised, current[:index] + current[index + 1:]):
            current[index] = revised
            return True
    return False


def build_x2(
    x1: Sequence[Constraint],
    y1: str,
    rng: random.Random,
    mix: Mapping[str, float],
    pool: Sequence[Constraint],
    max_ops: int = 2,
    max_tries: int = 20,
    prompt: str | None = None,
) -> tuple[list[Constraint], list[str]] | None:
    """(x2 constraints, ops applied) such that y1 fails x2 on a checkable constraint; None if no try works."""
    unknown = set(mix) - set(OPS)
    if unknown or not any(mix.get(op, 0) > 0 for op in ("add", "revise")):
        raise ValueError(f"builder.ops={dict(mix)}: use add/delete/revise weights, with add or revise > 0")
    ops, weights = zip(*[(op, float(mix.get(op, 0))) for op in OPS])
    for _ in range(max_tries):
        current, applied = list(x1), []
        for _ in range(rng.randint(1, max_ops)):
            op = rng.choices(ops, weights)[0]
            if _apply(op, current, pool, rng):
                applied.append(op)
        if set(current) == set(x1):
            continue
        if any(c.checkable and not c.check(y1, prompt=prompt) for c in current):
            return current, applied
    return None


@dataclass(frozen=True)
class ReversedQuad:
    """Indices of y1 and y2 among the sampled answers, x2, and the positions of x1 that were reversed."""

    y1: int
    y2: int
    x2: tuple[Constraint, ...]
    reversed_positions: tuple[int, ...]


def reversal_quad(
    x1: Sequence[Constraint],
    vectors: Sequence[Sequence[bool]],
    responses: Sequence[str],
    reverse: Reverse,
    stats: BuildStats,
    prompt: str | None = None,
    allow_approximate: bool = False,
) -> ReversedQuad | None:
    """The quad whose y2 fails the fewest constraints of x1 (first in sample order on ties).

    Only exact reverses are used unless ``allow_approximate`` (then the re-check decides: an
    approximate reverse y2 does not meet rejects that y2). Each rejected y2 candidate is counted under
    ``reverse_candidate:<reason>``; an instruction
    that yields no quad is counted once under its instruction-level reason.
    """
    y1 = next((i for i, vector in enumerate(vectors) if all(vector)), None)
    if y1 is None:
        stats.skip("no_response_meets_x1")
        return None
    candidates = sorted(
        (i for i, vector in enumerate(vectors) if not all(vector)),
        key=lambda i: (len(vectors[i]) - sum(vectors[i]), i),
    )
    if not candidates:
        stats.skip("no_response_violates_x1")
        return None
    for y2 in candidates:
        failed = tuple(k for k, ok in enumerate(vectors[y2]) if not ok)
        x2, problem = _reversed_instruction(x1, failed, reverse, allow_approximate)
        if x2 is not None:
            problem = _quad_problem(x1, x2, failed, responses[y1], responses[y2], prompt)
        if problem is None:
            return ReversedQuad(y1, y2, tuple(x2), failed)  # type: ignore[arg-type]
        stats.skip(f"reverse_candidate:{problem}")
    stats.skip("no_y2_gives_a_verified_quad")
    return None


def _reversed_instruction(
    x1: Sequence[Constraint], failed: Sequence[int], reverse: Reverse, allow_approximate: bool
) -> tuple[list[Constraint] | None, str | None]:
    x2 = list(x1)
    for k in failed:
        if not x1[k].checkable:
            return None, "failed_constraint_not_rule_checkable"
        if x1[k].reverse_exactness != "exact" and not (allow_approximate and x1[k].reverse_exactness):
            return None, "no_exact_reverse"
        reversed_constraint = reverse(x1[k])
        if reversed_constraint is None:
            return None, "no_exact_reverse"
        x2[k] = reversed_constraint
    kept = [c for k, c in enumerate(x2) if k not in failed]
    for k in failed:
        if x2[k] in kept or any(conflicts(x2[k].kind, other.kind) for other in kept):
            return None, "reverse_conflicts_with_kept_constraint"
    return x2, None


def _quad_problem(
    x1: Sequence[Constraint],
    x2: Sequence[Constraint],
    failed: Sequence[int],
    y1: str,
    y2: str,
    prompt: str | None,
) -> str | None:
    """The first of the four IOPO relations the rule checkers do not confirm (None: all hold)."""

    def meets(constraints: Sequence[Constraint], response: str) -> bool:
        return all(c.check(response, prompt=prompt) for c in constraints if c.checkable)

    if not meets(x1, y1):
        return "y1_fails_x1"
    if not meets(x2, y2):
        return "y2_fails_x2"
    if any(x2[k].check(y1, prompt=prompt) for k in failed):
        return "y1_meets_a_reversed_constraint"
    if all(x1[k].check(y2, prompt=prompt) for k in failed):
        return "y2_meets_x1"
    return None
