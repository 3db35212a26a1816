"""Registry of constraint kinds: IFEval and IFBench ids (checkable) plus ``free_text``.

Checkers are the maintained ``if_verifiable`` classes, except the IFBench ones whose
official scoring the port does not follow (:mod:`ifpo.constraints.ifbench_official`); a kind's accepted
parameters are read from its checker's ``build_description`` signature so the
registry never drifts from the checker code.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ifpo.constraints import ifbench_official, offline_nltk
from ifpo.constraints.errors import ConstraintError
from ifpo.constraints.ifeval_kinds import IFEVAL_KINDS, KindAndKwargs, Reverser, Reviser

offline_nltk.install()
ifbench_official.install()

from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT as _IFBENCH_CHECKERS
from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT as _IFEVAL_CHECKERS

FREE_TEXT = "free_text"


@dataclass(frozen=True)
class KindSpec:
    """One constraint kind: how to build its checker, which parameters it takes, how it transforms."""

    id: str
    benchmark: str  # "ifeval", "ifbench" or "free_text"
    checker_class: type | None
    params: tuple[str, ...]
    param_types: Mapping[str, type]
    templates: tuple[str, ...] = ()
    reverse_fn: Reverser | None = None
    reverse_exactness: str | None = None
    revise_fn: Reviser | None = None
    extra_fields: Any = None
    out_of_domain: Any = None  # kwargs -> reason str when the checker cannot check them as specified

    @property
    def checkable(self) -> bool:
        """True when a rule checker exists (False means an LLM judge is needed)."""
        return self.checker_class is not None


def _accepted_params(checker_class: type) -> tuple[str, ...]:
    signature = inspect.signature(checker_class.build_description)
    return tuple(
        name
        for name, p in signature.parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    )


def _bump_first_int_param(kind: str, int_params: tuple[str, ...]) -> Reviser:
    """Generic IFBench revision: move the first integer parameter up by one or two."""

    def revise(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
        for name in int_params:
            value = kwargs.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                return kind, {**kwargs, name: value + rng.choice((1, 2))}
        raise ConstraintError(f"kind {kind!r} has no integer parameter set to revise", reason="no_revision")

    return revise


def _build_registry() -> dict[str, KindSpec]:
    kinds: dict[str, KindSpec] = {}
    for kind_id, checker in _IFEVAL_CHECKERS.items():
        info = IFEVAL_KINDS[kind_id]
        kinds[kind_id] = KindSpec(
            id=kind_id,
            benchmark="ifeval",
            checker_class=checker,
            params=_accepted_params(checker),
            param_types=dict(info.param_types),
            templates=info.templates,
            reverse_fn=info.reverse,
            reverse_exactness=info.reverse_exactness,
            revise_fn=info.revise,
            extra_fields=info.extra_fields,
            out_of_domain=info.out_of_domain,
        )
    for kind_id, port_checker in _IFBENCH_CHECKERS.items():
        checker = ifbench_official.OFFICIAL_CHECKERS.get(kind_id, port_checker)
        if kind_id in kinds:  # pragma: no cover - the two id sets are disjoint today
            continue
        params = _accepted_params(checker)
        int_like = tuple(p for p in params if p in {"N", "small_n", "n", "m", "min_words", "max_words",
                                                      "percentage", "n_start", "n_end"})
        kinds[kind_id] = KindSpec(
            id=kind_id,
            benchmark="ifbench",
            checker_class=checker,
            params=params,
            param_types={},
            revise_fn=_bump_first_int_param(kind_id, int_like) if int_like else None,
        )
    kinds[FREE_TEXT] = KindSpec(
        id=FREE_TEXT,
        benchmark=FREE_TEXT,
        checker_class=None,
        params=("text",),
        param_types={"text": str},
        templates=("{text}",),
    )
    return kinds


#: All known kinds by id.
KINDS: Mapping[str, KindSpec] = _build_registry()
IFEVAL_KIND_IDS: tuple[str, ...] = tuple(sorted(_IFEVAL_CHECKERS))
IFBENCH_KIND_IDS: tuple[str, ...] = tuple(sorted(_IFBENCH_CHECKERS))


def get_kind(kind_id: str) -> KindSpec:
    """The spec for ``kind_id``; raises :class:`ConstraintError` naming the unknown id."""
    try:
        return KINDS[kind_id]
    except KeyError:
        raise ConstraintError(f"unknown constraint kind {kind_id!r}", reason="unknown_kind") from None
