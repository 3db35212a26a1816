"""Read IFEval-format records (``prompt``, ``instruction_id_list``, ``kwargs``) into Instructions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from ifpo.constraints.constraint import Constraint, Instruction
from ifpo.constraints.errors import ConstraintError, ConstraintFormatError
from ifpo.io.jsonl import BadLine, read_jsonl

T = TypeVar("T")


def _require(record: Mapping[str, Any], name: str, expected: type, source: str, line: int | None) -> Any:
    if name not in record:
        raise ConstraintFormatError(f"missing field {name!r}", source=source, line=line, field=name,
                              reason="missing_field")
    value = record[name]
    if not isinstance(value, expected):
        raise ConstraintFormatError(
            f"{name!r} must be {expected.__name__}, got {type(value).__name__}",
            source=source, line=line, field=name, reason="bad_type",
        )
    return value


def parse_ifeval_record(record: Any, source: str = "<record>", line: int | None = None) -> Instruction:
    """One IFEval-style dict -> :class:`Instruction`.

    ``kwargs`` entries with ``None`` values are dropped first (the published
    dataset lists every parameter name with ``None`` for unused ones, and the
    reference evaluator drops them too). Errors name ``source``, ``line`` and
    the offending field, e.g. ``kwargs[2].num_words``.
    """
    if not isinstance(record, Mapping):
        raise ConstraintFormatError(f"record must be a JSON object, got {type(record).__name__}",
                              source=source, line=line, reason="bad_type")
    prompt = _require(record, "prompt", str, source, line)
    ids = _require(record, "instruction_id_list", list, source, line)
    kwargs_list = record.get("kwargs", [{} for _ in ids])
    if not isinstance(kwargs_list, list):
        raise ConstraintFormatError(f"'kwargs' must be list, got {type(kwargs_list).__name__}",
                              source=source, line=line, field="kwargs", reason="bad_type")
    if len(kwargs_list) != len(ids):
        raise ConstraintFormatError(f"{len(ids)} instruction ids but {len(kwargs_list)} kwargs entries",
                              source=source, line=line, field="kwargs", reason="length_mismatch")
    constraints = []
    for i, (kind, kwargs) in enumerate(zip(ids, kwargs_list)):
        if not isinstance(kind, str):
            raise ConstraintFormatError(f"instruction id must be a string, got {kind!r}", source=source,
                                  line=line, field=f"instruction_id_list[{i}]", reason="bad_type")
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, Mapping):
            raise ConstraintFormatError(f"kwargs entry must be an object, got {type(kwargs).__name__}",
                                  source=source, line=line, field=f"kwargs[{i}]", reason="bad_type")
        try:
            constraints.append(Constraint(kind, {k: v for k, v in kwargs.items() if v is not None}))
        except ConstraintError as exc:
            field = f"instruction_id_list[{i}]" if exc.reason == "unknown_kind" else (
                f"kwargs[{i}].{exc.field}" if exc.field else f"kwargs[{i}]")
            raise ConstraintError(f"{kind}: {exc.detail}", source=source, line=line, field=field,
                                  reason=exc.reason) from exc
    key = record.get("key", record.get("id"))
    return Instruction(prompt=prompt, constraints=tuple(constraints), id=None if key is None else str(key))


def parse_jsonl(
    path: str | Path,
    parse: Callable[[Any, str, int], T],
    on_error: Literal["raise", "skip"] = "raise",
) -> tuple[list[T], Counter[str]]:
    """Apply ``parse(record, source, line)`` to every record of a JSONL file.

    Invalid JSON and any :class:`ConstraintError` raised by ``parse`` either propagate
    (naming file, line and field) or, with ``on_error="skip"``, are counted by reason.
    Blank lines are ignored.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    source = str(path)
    parsed: list[T] = []
    skipped: Counter[str] = Counter()
    for line_no, record in read_jsonl(path):
        try:
            if isinstance(record, BadLine):
                raise ConstraintFormatError(record.problem, source=source, line=line_no, reason=record.reason)
            parsed.append(parse(record, source, line_no))
        except ConstraintError as exc:
            if on_error == "raise":
                raise
            skipped[exc.reason] += 1
    return parsed, skipped


def load_ifeval_jsonl(
    path: str | Path, on_error: Literal["raise", "skip"] = "raise"
) -> tuple[list[Instruction], Counter[str]]:
    """Read a JSONL file of IFEval records.

    Returns the instructions and a counter of skipped records by reason (empty
    unless ``on_error="skip"``). Blank lines are ignored.
    """
    return parse_jsonl(
        path, lambda record, source, line: parse_ifeval_record(record, source=source, line=line), on_error
    )
