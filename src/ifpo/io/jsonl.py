"""Reading JSONL with located problems: the one line reader behind every JSONL input.

Bytes are decoded line by line (a leading byte-order mark allowed on line 1), so one bad byte
costs one line, never the whole file. A line that cannot be read comes back as a `BadLine`
(line, reason, problem) in place of its value, so each caller raises its own located error or
counts a skip; blank lines are left out.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

LONE_SURROGATE = "a lone surrogate escape (\\ud800-\\udfff) is not valid Unicode text"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


@dataclass(frozen=True)
class BadLine:
    """A line that is not a JSON value: reason is invalid_utf8, invalid_json or invalid_unicode."""

    line: int
    reason: str
    problem: str
    detail: str = ""  # the decoder's own words (UnicodeDecodeError.reason), for messages that add them


def is_unicode_text(value: Any) -> bool:
    """False when a decoded JSON value holds a lone surrogate (from an escape such as "\\ud800"):
    Python accepts it, but it is not Unicode text and cannot be written as UTF-8 later."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def has_lone_surrogate(text: str, value: Any) -> bool:
    """True when JSON `text`, decoded to `value`, holds a lone surrogate (one regex scan when it cannot)."""
    return bool(_SURROGATE_ESCAPE.search(text)) and not is_unicode_text(value)


def read_jsonl(path: str | os.PathLike[str], check_unicode: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number, value or BadLine) for every non-blank line of a JSONL file.

    `check_unicode=False` accepts values holding lone surrogates (for files only compared, never
    written again)."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                problem = f"invalid UTF-8 at byte {err.start + 1} of the line"
                yield number, BadLine(number, "invalid_utf8", problem, err.reason)
                continue
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as err:
                deep = not isinstance(err, json.JSONDecodeError)
                problem = "nested too deeply" if deep else f"invalid JSON: {err.msg}"
                yield number, BadLine(number, "invalid_json", problem)
                continue
            if check_unicode and has_lone_surrogate(text, value):
                yield number, BadLine(number, "invalid_unicode", LONE_SURROGATE)
                continue
            yield number, value


# -- append-only logs (resume ledgers, progress stores) -------------------------------------
def read_log(path: str | os.PathLike[str]) -> tuple[list[Any], int | None]:
    """The values of an append-only JSONL log up to its first unreadable or unterminated line, and
    that line's number (None when every line is whole): the caller cuts there once it has checked
    the log is its own. Values are not checked for lone surrogates (the writer escapes them)."""
    with open(path, "rb") as handle:
        data = handle.read()
    torn = data.count(b"\n") + 1 if data and not data.endswith(b"\n") else None
    values = []
    for number, value in read_jsonl(path, check_unicode=False):
        if isinstance(value, BadLine) or number == torn:
            return values, number
        values.append(value)
    return values, torn


def cut_torn_tail(path: str | os.PathLike[str]) -> int:
    """Cut an append-only JSONL file back to its last newline; returns the bytes cut.

    A writer killed mid-line leaves a last line without its newline: the one corruption an
    append-then-fsync log can have. Cutting it lets the next append start on a clean line."""
    with open(path, "r+b") as handle:
        data = handle.read()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            handle.truncate(keep)
    return len(data) - keep


def cut_from_line(path: str | os.PathLike[str], line: int) -> None:
    """Truncate a JSONL file so that line `line` (1-based) and everything after it are gone."""
    with open(path, "r+b") as handle:
        offset = sum(len(raw) for _, raw in zip(range(line - 1), handle))
        handle.truncate(offset)
