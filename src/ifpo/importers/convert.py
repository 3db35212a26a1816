"""Convert preference data people already have into our pair/quad records.

Formats:
* ``trl``: TRL preference rows (prompt/chosen/rejected, strings or messages, implicit prompt
  allowed; optional margin), validated and passed through.
* ``llamafactory``: LLaMA-Factory ranking data, alpaca style (instruction, input, chosen,
  rejected, optional system/history/margin) or sharegpt style (conversations + chosen/rejected
  messages). The RPO authors trained on this with a ``margin`` column.
* ``iopo_sharegpt``: the IOPO authors' layout: two consecutive human turns x1, x2;
  ``chosen`` = y1 (answers x1), ``rejected`` = y2 (the *preferred* answer to x2).

Rows may carry IFEval constraints (``instruction_id_list`` + ``kwargs``, top level or in
``meta``); they are validated with the constraint library (unknown ids, bad kwargs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ifpo.constraints import ConstraintError, parse_ifeval_record
from ifpo.data.records import read_rows, validate_record
from ifpo.io.errors import DataFormatError, SkipCounter

Row = dict[str, Any]
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "observation": "tool", "function_call": "assistant"}


def _text(row: Row, name: str, source: str, line: int) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise DataFormatError(source, line, name, "missing or not a string")
    if name in ("chosen", "rejected") and not value.strip():
        raise DataFormatError(source, line, name, "empty response")
    return value


def _sharegpt_message(value: Any, where: str, source: str, line: int) -> dict[str, str]:
    if not isinstance(value, dict) or not isinstance(value.get("value"), str):
        raise DataFormatError(source, line, where, "expected a {from, value} message")
    role = SHAREGPT_ROLES.get(value.get("from"))
    if role is None:
        raise DataFormatError(source, line, f"{where}.from", f"unknown speaker {value.get('from')!r}")
    return {"role": role, "content": value["value"]}


def _sharegpt_response(row: Row, name: str, source: str, line: int) -> str:
    value = row.get(name)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        text = value
    else:
        text = _sharegpt_message(value, name, source, line)["content"]
    if not text.strip():
        raise DataFormatError(source, line, name, "empty response")
    return text


def _conversations(row: Row, source: str, line: int) -> list[dict[str, str]]:
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise DataFormatError(source, line, "conversations", "missing or not a non-empty list")
    return [_sharegpt_message(t, f"conversations[{i}]", source, line) for i, t in enumerate(turns)]


def _check_constraints(row: Row, source: str, line: int) -> dict[str, Any]:
    """Validate IFEval constraints carried by the row; returns them for ``meta`` (empty if none)."""
    holder = (
        row
        if "instruction_id_list" in row
        else row.get("meta")
        if isinstance(row.get("meta"), dict)
        else None
    )
    if not holder or "instruction_id_list" not in holder:
        return {}
    try:
        instruction = parse_ifeval_record({"prompt": "", **holder}, source=source, line=line)
    except ConstraintError as exc:
        raise DataFormatError(source, line, exc.field or "instruction_id_list", exc.detail) from None
    return {"constraints": [c.to_dict() for c in instruction.constraints]}


def from_trl(row: Row, source: str, line: int) -> Row:
    kind = "quad" if "x1" in row else "pair"
    record = validate_record(row, kind, source, line)
    if kind == "quad":
        record.pop("margin", None)
    meta = row.get("meta") or {}
    if not isinstance(meta, dict):
        raise DataFormatError(source, line, "meta", f"expected an object, got {type(meta).__name__}")
    meta = {**meta, **_check_constraints(row, source, line), "import_format": "trl"}
    return {**record, "meta": meta}


def _margin(row: Row, source: str, line: int) -> float | None:
    if "margin" not in row or row["margin"] is None:
        return None
    value = row["margin"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataFormatError(source, line, "margin", f"expected a number, got {value!r}")
    return value


def from_llamafactory(row: Row, source: str, line: int) -> Row:
    if "conversations" in row:
        prompt = _conversations(row, source, line)
        if isinstance(row.get("system"), str) and row["system"]:
            prompt = [{"role": "system", "content": row["system"]}, *prompt]
        chosen, rejected = (_sharegpt_response(row, k, source, line) for k in ("chosen", "rejected"))
    else:
        instruction = _text(row, "instruction", source, line)
        extra = row.get("input") or ""
        if not isinstance(extra, str):
            raise DataFormatError(source, line, "input", "not a string")
        prompt = []
        if isinstance(row.get("system"), str) and row["system"]:
            prompt.append({"role": "system", "content": row["system"]})
        for i, turn in enumerate(row.get("history") or []):
            if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
                raise DataFormatError(source, line, f"history[{i}]", "expected [user, assistant] strings")
            prompt += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
        prompt.append({"role": "user", "content": f"{instruction}\n{extra}" if extra else instruction})
        chosen, rejected = _text(row, "chosen", source, line), _text(row, "rejected", source, line)
    record: Row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    margin = _margin(row, source, line)
    if margin is not None:
        record["margin"] = margin
    record = validate_record(record, "pair", source, line)
    if margin is None:
        record.pop("margin")
    return {**record, "meta": {**_check_constraints(row, source, line), "import_format": "llamafactory"}}


def from_iopo_sharegpt(row: Row, source: str, line: int) -> Row:
    turns = _conversations(row, source, line)
    system = [t for t in turns if t["role"] == "system"]
    humans = [t for t in turns if t["role"] != "system"]
    if len(humans) != 2 or any(t["role"] != "user" for t in humans):
        raise DataFormatError(
            source, line, "conversations", "expected exactly two consecutive human turns (x1, x2)"
        )
    if isinstance(row.get("system"), str) and row["system"]:
        system = [{"role": "system", "content": row["system"]}]
    y1, y2 = (
        _sharegpt_response(row, "chosen", source, line),
        _sharegpt_response(row, "rejected", source, line),
    )
    quad = {"x1": system + [humans[0]], "x2": system + [humans[1]], "y1": y1, "y2": y2}
    record = validate_record(quad, "quad", source, line)
    record.pop("margin", None)
    return {**record, "meta": {**_check_constraints(row, source, line), "import_format": "iopo_sharegpt"}}


CONVERTERS: dict[str, Callable[[Row, str, int], Row]] = {
    "trl": from_trl,
    "llamafactory": from_llamafactory,
    "iopo_sharegpt": from_iopo_sharegpt,
}


def convert_file(fmt: str, path: str | Path, on_error: str = "raise") -> tuple[list[Row], SkipCounter]:
    """All converted records of a JSON/JSONL file; bad rows raise (file, line, field) or are counted."""
    if fmt not in CONVERTERS:
        raise ValueError(f"unknown import format {fmt!r}; allowed: {', '.join(CONVERTERS)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}; allowed: raise, skip")
    skips = SkipCounter()
    return convert_rows(read_rows(Path(path)), CONVERTERS[fmt], str(path), on_error, skips), skips


def convert_rows(
    rows: Iterable[tuple[int, Any]],
    convert: Callable[[Row, str, int], Row],
    source: str,
    on_error: str,
    skips: SkipCounter,
) -> list[Row]:
    """Convert (line, row) pairs; a bad row raises its located error or, with on_error='skip', is counted."""
    out = []
    for line, row in rows:
        try:
            if isinstance(row, DataFormatError):
                raise row
            if not isinstance(row, dict):
                raise DataFormatError(
                    source, line, "<row>", f"expected a JSON object, got {type(row).__name__}"
                )
            out.append(convert(row, source, line))
        except DataFormatError as err:
            if on_error == "raise":
                raise
            skips.add(f"{err.field}: {err.problem}", f"{source}:{line}")
    return out


def write_records(records: list[Row], path: str | Path) -> None:
    from ifpo.io.atomic import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
