"""IOPO x2 construction (arXiv 2411.06208): add / delete / revise x1's constraints so y1 violates x2.

A delete alone cannot make y1 (which meets all of x1) fail x2, so every accepted x2 must
contain at least one checkable constraint y1 fails; deletes only ride along with an add or
a revise. IFEval's ``conflicts()`` is respected for every new constraint.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from ifpo.constraints import Constraint, conflicts

OPS = ("add", "delete", "revise")


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
