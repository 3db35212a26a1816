"""Reading and validating preference records.

Formats (TRL's standard preference formats, plus IOPO quads):
- pair: `prompt`, `chosen`, `rejected`, each either a string (plain text) or a list of
  `{"role", "content"}` messages (conversational; the prompt may hold a system message and
  a multi-turn history). TRL's implicit-prompt form (no `prompt`, chosen/rejected are whole
  conversations sharing a prefix) is accepted too. Optional numeric `margin` (RPO).
- quad: `x1`, `x2` (prompts), `y1`, `y2` (responses); y1 answers x1, y2 answers x2.

Local JSONL is read line by line here rather than through `datasets.load_dataset`, because
the latter reports a malformed line as a deep pyarrow error without its line number; the
validated rows then become a `datasets.Dataset` (so map/fingerprint/caching still apply).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ifpo.io.errors import DataFormatError, SkipCounter
from ifpo.io.jsonl import LONE_SURROGATE, BadLine, has_lone_surrogate, is_unicode_text, read_jsonl

Messages = list[dict[str, str]]
ROLES = {"system", "user", "assistant", "tool"}
FIELDS = {"pair": ("prompt", "chosen", "rejected"), "quad": ("x1", "x2", "y1", "y2")}
RESPONSE_FIELDS = {"pair": ("chosen", "rejected"), "quad": ("y1", "y2")}
_BAD_LINE_FIELD = {"invalid_utf8": "<encoding>", "invalid_json": "<json>", "invalid_unicode": "<text>"}
SOURCE_KEY = "source"  # "file:line" of a validated training record (set by validate_rows)


def _as_messages(value: Any, field_name: str, source: str, line: int, default_role: str) -> Messages:
    """Normalise a string or message list to a message list, validating every message."""
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if not isinstance(value, list) or not value:
        raise DataFormatError(
            source,
            line,
            field_name,
            f"expected a string or a non-empty list of messages, got {type(value).__name__}",
        )
    messages = []
    for i, message in enumerate(value):
        where = f"{field_name}[{i}]"
        if not isinstance(message, dict):
            raise DataFormatError(
                source, line, where, f"expected a message object, got {type(message).__name__}"
            )
        if message.get("role") not in ROLES:
            raise DataFormatError(
                source, line, f"{where}.role", f"expected one of {sorted(ROLES)}, got {message.get('role')!r}"
            )
        if not isinstance(message.get("content"), str):
            raise DataFormatError(source, line, f"{where}.content", "missing or not a string")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _split_implicit_prompt(record: dict[str, Any], source: str, line: int) -> dict[str, Any]:
    """TRL implicit-prompt form: the shared message prefix of chosen and rejected is the prompt."""
    chosen = _as_messages(record["chosen"], "chosen", source, line, "assistant")
    rejected = _as_messages(record["rejected"], "rejected", source, line, "assistant")
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise DataFormatError(source, line, "prompt", "missing, and chosen/rejected share no prompt prefix")
    return {**record, "prompt": chosen[:shared], "chosen": chosen[shared:], "rejected": rejected[shared:]}


def validate_record(record: Any, kind: str, source: str, line: int) -> dict[str, Any]:
    """Return the normalised record (all texts as message lists) or raise DataFormatError."""
    if not isinstance(record, dict):
        raise DataFormatError(source, line, "<row>", f"expected a JSON object, got {type(record).__name__}")
    if kind == "pair" and "prompt" not in record and "chosen" in record and "rejected" in record:
        record = _split_implicit_prompt(record, source, line)
    for name in FIELDS[kind]:
        if name not in record:
            raise DataFormatError(
                source, line, name, f"missing (a {kind} record needs {', '.join(FIELDS[kind])})"
            )
    out: dict[str, Any] = {}
    for name in FIELDS[kind]:
        is_response = name in RESPONSE_FIELDS[kind]
        messages = _as_messages(record[name], name, source, line, "assistant" if is_response else "user")
        if is_response:
            if messages[-1]["role"] != "assistant":
                raise DataFormatError(
                    source, line, name, "the last message of a response must have role 'assistant'"
                )
            if not messages[-1]["content"].strip():
                raise DataFormatError(source, line, name, "empty response")
        out[name] = messages
    if kind == "pair" and out["chosen"] == out["rejected"]:
        raise DataFormatError(source, line, "rejected", "identical to chosen")
    if kind == "quad" and out["x1"] == out["x2"]:
        raise DataFormatError(source, line, "x2", "identical to x1 (the two instructions must differ)")
    margin = record.get("margin", 0.0)
    if margin is None:
        margin = 0.0
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
        raise DataFormatError(source, line, "margin", f"expected a finite number, got {margin!r}")
    if margin < 0:
        raise DataFormatError(
            source, line, "margin", f"must be >= 0 (how much better chosen is), got {margin!r}"
        )
    out["margin"] = float(margin)
    return out


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) for JSONL or JSON files; a bad line (invalid JSON or UTF-8) is yielded
    as a DataFormatError naming its line, so callers raise it or count it as a skip."""
    source = str(path)
    if path.suffix == ".json":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = raw.count(b"\n", 0, err.start) + 1
            raise DataFormatError(source, line, "<encoding>", f"invalid UTF-8 ({err.reason})") from None
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFormatError(source, err.lineno, "<json>", f"invalid JSON: {err.msg}") from None
        except RecursionError:
            raise DataFormatError(source, 1, "<json>", "nested too deeply") from None
        if not isinstance(rows, list):
            raise DataFormatError(source, 1, "<json>", "expected a JSON array of records")
        suspect = has_lone_surrogate(text, rows)  # one scan of the file; rows are checked only if needed
        for i, row in enumerate(rows):
            bad = suspect and not is_unicode_text(row)
            yield i + 1, DataFormatError(source, i + 1, "<text>", LONE_SURROGATE) if bad else row
        return
    for number, row in read_jsonl(path):  # one bad byte or line costs that line, never the file
        if isinstance(row, BadLine):
            field = _BAD_LINE_FIELD[row.reason]
            problem = f"{row.problem} ({row.detail})" if row.detail else row.problem
            row = DataFormatError(source, number, field, problem)
        yield number, row


def validate_rows(
    rows: Iterable[tuple[int, Any]], kind: str, source: str, on_error: str, skips: SkipCounter
) -> list[dict[str, Any]]:
    """Validate rows; raise on the first bad one, or skip and count it with on_error='skip'."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"data.on_error={on_error!r}; allowed: raise, skip")
    valid = []
    for line, row in rows:
        try:
            if isinstance(row, DataFormatError):
                raise row
            # `source` ("file:line") travels with the record, so later drops (length) name the line too.
            valid.append({**validate_record(row, kind, source, line), SOURCE_KEY: f"{source}:{line}"})
        except DataFormatError as err:
            if on_error == "raise":
                raise
            skips.add(f"{err.field}: {err.problem}", f"{source}:{line}")
    return valid
