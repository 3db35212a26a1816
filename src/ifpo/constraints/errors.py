"""Errors raised for bad constraints and bad data files.

Both carry where the problem is (file, line, field) as attributes so callers
can count skips by reason or show a precise message to the person fixing data.
"""

from __future__ import annotations

from ifpo.io.errors import DataFormatError


class ConstraintError(ValueError):
    """A constraint (kind id + parameters) is invalid or cannot be used.

    ``source``/``line``/``field`` say where it came from when it was read from a
    file; ``reason`` is a short stable tag used for skip counting.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
        reason: str = "invalid_constraint",
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.reason = reason
        self.detail = message
        where = []
        if source is not None:
            where.append(str(source))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = (":".join(where[:2]) + (f" {where[2]}" if len(where) > 2 else "")) if where else ""
        # ValueError's own __init__, not super(): ConstraintFormatError also derives from
        # DataFormatError, whose __init__ takes (source, line, field, problem).
        ValueError.__init__(self, f"{prefix}: {message}" if prefix else message)


class ConstraintFormatError(ConstraintError, DataFormatError):
    """A record of an instructions/benchmark file is malformed (bad JSON/CSV, missing or mistyped
    field): a ConstraintError for the constraint code, and the project's one DataFormatError."""

    def __init__(self, message: str, **kwargs: object) -> None:
        kwargs.setdefault("reason", "malformed_record")
        ConstraintError.__init__(self, message, **kwargs)  # type: ignore[arg-type]
        self.problem = message


class ResourceUnavailableError(ConstraintError):
    """A checker needs an NLTK resource (e.g. stopwords) that is not installed offline."""
