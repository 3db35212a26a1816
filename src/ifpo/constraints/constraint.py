"""``Constraint`` (a kind id plus parameters) and ``Instruction`` (a prompt plus constraints).

A constraint validates itself on construction, so a bad parameter fails where
the data is read rather than deep inside a training run.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from if_verifiable.common import get_loose_transformations

from ifpo.constraints.errors import ConstraintError, ResourceUnavailableError
from ifpo.constraints.ifeval_kinds import RELATIONS
from ifpo.constraints.registry import KindSpec, get_kind

_RELATION_PARAMS = ("relation", "let_relation", "capital_relation")


@contextmanager
def _fixed_global_random(seed: int = 0) -> Iterator[None]:
    """if_verifiable draws from the global ``random`` when building descriptions; pin it, then restore."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _canonical(kwargs: Mapping[str, Any]) -> str:
    return json.dumps(dict(kwargs), sort_keys=True, ensure_ascii=False, default=str)


@functools.lru_cache(maxsize=8192)
def _build_checker(kind: str, kwargs_json: str, prompt: str | None) -> Any:
    spec = get_kind(kind)
    assert spec.checker_class is not None
    checker = spec.checker_class(kind)
    with _fixed_global_random():
        checker.build_description(**json.loads(kwargs_json))
        args = checker.get_instruction_args()
        if args and "prompt" in args and prompt is not None:
            checker.build_description(prompt=prompt)
    return checker


def _validate(spec: KindSpec, kwargs: Mapping[str, Any]) -> None:
    for name in kwargs:
        if name not in spec.params:
            raise ConstraintError(
                f"kind {spec.id!r} does not accept parameter {name!r} (accepts: {list(spec.params)})",
                field=name,
                reason="unknown_parameter",
            )
    for name in spec.params:
        if name not in kwargs or kwargs[name] is None:
            raise ConstraintError(
                f"kind {spec.id!r} needs parameter {name!r}", field=name, reason="missing_parameter"
            )
    for name, expected in spec.param_types.items():
        value = kwargs[name]
        if expected is int and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConstraintError(f"{name} must be an integer, got {value!r}", field=name, reason="bad_type")
        if expected is str and not isinstance(value, str):
            raise ConstraintError(f"{name} must be a string, got {value!r}", field=name, reason="bad_type")
        if expected is list and (
            not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value)
        ):
            raise ConstraintError(
                f"{name} must be a non-empty list of strings, got {value!r}", field=name, reason="bad_type"
            )
    for name in _RELATION_PARAMS:
        if name in spec.param_types and kwargs[name] not in RELATIONS:
            raise ConstraintError(
                f"{name} must be one of {RELATIONS}, got {kwargs[name]!r}", field=name, reason="bad_value"
            )


@dataclass(frozen=True)
class Constraint:
    """A kind id (IFEval/IFBench id or ``"free_text"``) with its parameters.

    ``kwargs`` is stored as a read-only copy. Construction validates the kind,
    the parameter names/types and that the rule checker can be built.
    """

    kind: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = get_kind(self.kind)
        if not isinstance(self.kwargs, Mapping):
            raise ConstraintError(f"kwargs must be a mapping, got {type(self.kwargs).__name__}",
                                  field="kwargs", reason="bad_type")
        frozen = MappingProxyType(copy.deepcopy(dict(self.kwargs)))
        object.__setattr__(self, "kwargs", frozen)
        _validate(spec, frozen)
        if spec.checkable:
            try:
                _build_checker(self.kind, _canonical(frozen), None)
            except ConstraintError:
                raise
            except Exception as exc:  # checker rejected the parameters
                raise ConstraintError(f"kind {self.kind!r} rejected its parameters: {exc}",
                                      field="kwargs", reason="bad_value") from exc

    def __hash__(self) -> int:
        return hash((self.kind, _canonical(self.kwargs)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Constraint):
            return NotImplemented
        return self.kind == other.kind and _canonical(self.kwargs) == _canonical(other.kwargs)

    def __repr__(self) -> str:
        return f"Constraint({self.kind!r}, {dict(self.kwargs)!r})"

    @property
    def spec(self) -> KindSpec:
        return get_kind(self.kind)

    @property
    def checkable(self) -> bool:
        """False for free-text constraints, which need an LLM judge."""
        return self.spec.checkable

    @property
    def reverse_exactness(self) -> str | None:
        """``"exact"`` (true complement), ``"approximate"`` or ``None`` (no rule-based reverse)."""
        return self.spec.reverse_exactness

    @property
    def out_of_domain_reason(self) -> str | None:
        """Why the rule checker cannot check these parameters as written (then ``check`` is always False)."""
        judge = self.spec.out_of_domain
        return judge(self.kwargs) if judge is not None else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: ``{"kind": ..., "kwargs": {...}}``."""
        return {"kind": self.kind, "kwargs": copy.deepcopy(dict(self.kwargs))}

    def render(self, rng_or_index: random.Random | int | None = None) -> str:
        """Instruction text; paraphrase picked by index (modulo count) or drawn from ``rng``."""
        spec = self.spec
        if not spec.templates:
            # IFBench kinds: use the benchmark's own wording.
            with _fixed_global_random():
                checker = spec.checker_class(self.kind)  # type: ignore[misc]
                return str(checker.build_description(**dict(self.kwargs)))
        if isinstance(rng_or_index, random.Random):
            index = rng_or_index.randrange(len(spec.templates))
        else:
            index = (rng_or_index or 0) % len(spec.templates)
        fields = dict(self.kwargs)
        if spec.extra_fields is not None:
            fields.update(spec.extra_fields(self.kwargs))
        return spec.templates[index].format(**fields)

    def check(self, response: str, loose: bool = False, prompt: str | None = None) -> bool | None:
        """IFEval strict (or loose) verdict; ``None`` when the kind needs an LLM judge.

        Strict: the checker on the response as is; an empty/blank response fails.
        Loose: passes if any of IFEval's 8 variants (drop first line, last line,
        both, each with and without ``*``) passes. Parameters outside the
        checker's domain (see ``out_of_domain_reason``) never pass.
        """
        if not self.checkable:
            return None
        if self.out_of_domain_reason is not None:
            return False
        checker = _build_checker(self.kind, _canonical(self.kwargs), prompt)
        variants = get_loose_transformations(response) if loose else [response]
        try:
            return any(bool(v.strip() and checker.check_following(v)) for v in variants)
        except LookupError as exc:
            if isinstance(exc, (IndexError, KeyError)):  # checker bugs, not a missing NLTK resource
                raise
            missing = re.search(r"Resource '?([\w./-]+)'? not found", str(exc))
            name = missing.group(1) if missing else str(exc).strip().splitlines()[0]
            raise ResourceUnavailableError(
                f"checker for {self.kind!r} needs NLTK resource {name!r}, not installed (no downloads here)",
                reason="resource_unavailable",
            ) from exc

    def reverse(self) -> Constraint | None:
        """The constraint covering what this one excludes, or ``None`` when no rule-based reverse exists."""
        reverse_fn = self.spec.reverse_fn
        if reverse_fn is None:
            return None
        kind, kwargs = reverse_fn(self.kwargs)
        return Constraint(kind, kwargs)

    def revise(self, rng: random.Random | None = None) -> Constraint | None:
        """A different constraint (changed parameter or related kind) for IOPO; ``None`` when none is known.

        Where possible the revision is stricter, so a response meeting this
        constraint can fail the revision. Callers should re-check conflicts
        against the other constraints of the instruction.
        """
        revise_fn = self.spec.revise_fn
        if revise_fn is None:
            return None
        kind, kwargs = revise_fn(self.kwargs, rng or random.Random(0))
        revised = Constraint(kind, kwargs)
        if revised == self:  # pragma: no cover - guarded by tests of every revise function
            raise ConstraintError(f"revision of {self!r} did not change it", reason="no_revision")
        return revised


@dataclass(frozen=True)
class Instruction:
    """A prompt and the constraints it carries (``id`` is the source key, if any)."""

    prompt: str
    constraints: tuple[Constraint, ...]
    id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "constraints", tuple(self.constraints))

    @property
    def instruction_ids(self) -> list[str]:
        return [c.kind for c in self.constraints]

    def check(self, response: str, loose: bool = False) -> list[bool | None]:
        """Per-constraint verdicts (``None`` for free-text constraints)."""
        return [c.check(response, loose=loose, prompt=self.prompt) for c in self.constraints]

    def to_ifeval_record(self) -> dict[str, Any]:
        """IFEval-format dict (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``)."""
        return {
            "key": self.id,
            "prompt": self.prompt,
            "instruction_id_list": self.instruction_ids,
            "kwargs": [copy.deepcopy(dict(c.kwargs)) for c in self.constraints],
        }
