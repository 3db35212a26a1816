"""IFEval's table of instruction kinds that must not be combined in one prompt."""

from __future__ import annotations

import copy
import functools

from if_verifiable.ifeval import instructions_registry

from ifpo.constraints.registry import FREE_TEXT, get_kind


@functools.lru_cache(maxsize=1)
def _symmetric_table() -> dict[str, frozenset[str]]:
    # conflict_make mutates its argument, so give it a copy of the library's table.
    table = instructions_registry.conflict_make(copy.deepcopy(instructions_registry.INSTRUCTION_CONFLICTS))
    return {kind: frozenset(others) for kind, others in table.items()}


def conflicts(kind_a: str, kind_b: str) -> bool:
    """True when the two kinds cannot appear together.

    IFEval kinds follow IFEval's (symmetrised) conflict table; any other checkable
    kind conflicts only with itself; ``free_text`` conflicts with nothing.
    Unknown ids raise :class:`~ifpo.constraints.errors.ConstraintError`.
    """
    get_kind(kind_a)
    get_kind(kind_b)
    if FREE_TEXT in (kind_a, kind_b):
        return False
    table = _symmetric_table()
    if kind_a in table and kind_b in table:
        return kind_b in table[kind_a]
    return kind_a == kind_b
