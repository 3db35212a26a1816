"""Import a LLaMA-Factory preference dataset through its `dataset_info.json` entry.

LLaMA-Factory describes each dataset by an entry in `dataset_info.json` (see its data/README.md):
`file_name` (a file or folder next to dataset_info.json), `formatting` (alpaca | sharegpt),
`ranking` (true for preference data), `columns` (which row keys hold the prompt, query, history,
system, messages, chosen, rejected) and, for sharegpt, `tags` (the message keys for role and
content and the role values for user, assistant, observation, function and system). This module
reads such an entry with LLaMA-Factory's own semantics, which matter for getting it right:

- an entry that lists `columns` (or `tags`) sets every unlisted column (tag) to none, not to its
  default; without the key, the defaults are instruction / input / output / conversations and
  from / value / human / gpt / observation / function_call / system;
- alpaca: the user turn is `prompt` and `query` joined by a newline, after the `history` pairs;
  chosen and rejected are strings;
- sharegpt: a first message with the system tag is the system prompt (else the `system` column);
  turns alternate user-or-observation / assistant-or-function; a ranking example has an odd
  number of turns (it ends with the user) and chosen/rejected are single assistant messages.

Rows LLaMA-Factory would skip with a warning are located errors here (or counted skips with
`--on-error skip`). Only local `file_name` entries are read: hub and script entries would need a
download, so they are refused with a message saying so. A `margin` key on a row is kept (the RPO
authors' extension of this format).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifpo.data.records import read_rows, validate_record
from ifpo.data.sources import read_parquet_rows
from ifpo.importers.convert import Row, _check_constraints, _margin, convert_rows
from ifpo.io.errors import DataFormatError, SkipCounter

COLUMN_DEFAULTS: dict[str, str | None] = {
    "prompt": "instruction",
    "query": "input",
    "response": "output",
    "history": None,
    "messages": "conversations",
    "system": None,
    "tools": None,
    "images": None,
    "videos": None,
    "audios": None,
    "chosen": None,
    "rejected": None,
    "kto_tag": None,
}
TAG_DEFAULTS: dict[str, str | None] = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
FILE_SUFFIXES = (".json", ".jsonl", ".parquet")
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


@dataclass(frozen=True)
class DatasetEntry:
    """One `dataset_info.json` entry, with LLaMA-Factory's defaults applied."""

    name: str
    files: tuple[Path, ...]
    formatting: str
    columns: dict[str, str | None]
    tags: dict[str, str | None]


def _entry_error(info: Path, name: str, field: str, problem: str) -> DataFormatError:
    return DataFormatError(str(info), 1, f"{name}.{field}" if field else name, problem)


def read_entry(info_path: str | Path, name: str) -> DatasetEntry:
    """The entry `name` of a dataset_info.json, checked for what a preference import needs."""
    info = Path(info_path)
    if not info.is_file():
        raise FileNotFoundError(f"dataset_info.json not found: {info}")
    try:
        entries = json.loads(info.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(str(info), err.lineno, "<json>", f"invalid JSON: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise DataFormatError(str(info), 1, "<encoding>", f"invalid UTF-8 ({err.reason})") from None
    if not isinstance(entries, dict):
        raise DataFormatError(str(info), 1, "<json>", "expected an object of dataset entries")
    entry = entries.get(name)
    if not isinstance(entry, dict):
        known = ", ".join(sorted(k for k, v in entries.items() if isinstance(v, dict))) or "none"
        raise _entry_error(info, name, "", f"no such dataset entry; entries: {known}")
    hub = [k for k in HUB_KEYS if k in entry]
    if hub:
        raise _entry_error(
            info,
            name,
            hub[0],
            "only local file_name entries are imported (this one needs a "
            "download); download the data and point file_name at it",
        )
    if not entry.get("ranking", False):
        raise _entry_error(
            info,
            name,
            "ranking",
            "not a preference dataset (ranking: true needed; chosen and "
            "rejected answers are what preference training learns from)",
        )
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise _entry_error(info, name, "formatting", f"expected alpaca or sharegpt, got {formatting!r}")
    columns = _overrides(info, name, entry, "columns", COLUMN_DEFAULTS)
    tags = _overrides(info, name, entry, "tags", TAG_DEFAULTS)
    for needed in ("chosen", "rejected"):
        if not columns[needed]:
            raise _entry_error(
                info,
                name,
                f"columns.{needed}",
                "missing: a ranking entry names its chosen and rejected columns",
            )
    if columns["kto_tag"]:
        raise _entry_error(info, name, "columns.kto_tag", "KTO data (one answer with a label) has no pairs")
    if formatting == "sharegpt" and not (columns["messages"] and tags["role_tag"] and tags["content_tag"]):
        raise _entry_error(
            info, name, "columns.messages", "sharegpt needs messages, tags.role_tag and tags.content_tag"
        )
    return DatasetEntry(name, _files(info, name, entry), formatting, columns, tags)


def _overrides(
    info: Path, name: str, entry: dict[str, Any], key: str, defaults: dict[str, str | None]
) -> dict[str, str | None]:
    if key not in entry:
        return dict(defaults)
    given = entry[key]
    if not isinstance(given, dict) or not all(v is None or isinstance(v, str) for v in given.values()):
        raise _entry_error(info, name, key, "expected an object of names (strings)")
    return {k: given.get(k) for k in defaults}  # as LLaMA-Factory does: unlisted ones become none


def _files(info: Path, name: str, entry: dict[str, Any]) -> tuple[Path, ...]:
    file_name = entry.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise _entry_error(
            info, name, "file_name", "missing (the dataset file or folder next to dataset_info.json)"
        )
    path = info.parent / file_name
    if path.is_dir():
        files = tuple(sorted(p for p in path.iterdir() if p.suffix in FILE_SUFFIXES))
        if not files:
            raise _entry_error(info, name, "file_name", f"{path} holds no {'/'.join(FILE_SUFFIXES)} files")
        return files
    if not path.is_file():
        raise _entry_error(info, name, "file_name", f"{path} does not exist")
    if path.suffix not in FILE_SUFFIXES:
        raise _entry_error(
            info, name, "file_name", f"{path.suffix} files are not read; use {', '.join(FILE_SUFFIXES)}"
        )
    return (path,)


# ----------------------------------------------------------------------------------- rows
def _optional_text(row: Row, column: str | None, source: str, line: int) -> str:
    value = row.get(column) if column else None
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataFormatError(source, line, column or "", f"expected a string, got {type(value).__name__}")
    return value


def _alpaca(row: Row, entry: DatasetEntry, source: str, line: int) -> tuple[list[dict[str, str]], Any, Any]:
    columns, prompt = entry.columns, []
    history = row.get(columns["history"]) if columns["history"] else None
    if isinstance(history, list):
        for i, turn in enumerate(history):
            if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
                raise DataFormatError(
                    source, line, f"{columns['history']}[{i}]", "expected [user, assistant] strings"
                )
            prompt += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    query = [
        text
        for text in (
            _optional_text(row, columns["prompt"], source, line),
            _optional_text(row, columns["query"], source, line),
        )
        if text
    ]
    prompt.append({"role": "user", "content": "\n".join(query)})
    system = _optional_text(row, columns["system"], source, line)
    chosen, rejected = (row.get(columns[k]) for k in ("chosen", "rejected"))
    for key, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, str):
            raise DataFormatError(
                source, line, columns[key] or key, "expected a string answer (alpaca ranking)"
            )
    return ([{"role": "system", "content": system}] if system else []) + prompt, chosen, rejected


def _sharegpt(row: Row, entry: DatasetEntry, source: str, line: int) -> tuple[list[dict[str, str]], Any, Any]:
    columns, tags = entry.columns, entry.tags
    column, role_tag, content_tag = columns["messages"] or "", tags["role_tag"], tags["content_tag"]
    messages = row.get(column)
    if not isinstance(messages, list):
        raise DataFormatError(source, line, column, "missing or not a list of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get(content_tag), str):
            raise DataFormatError(
                source, line, f"{column}[{i}]", f"expected a message with a string {content_tag!r}"
            )
    offset, system = 0, _optional_text(row, columns["system"], source, line)
    if tags["system_tag"] and messages and messages[0].get(role_tag) == tags["system_tag"]:
        offset, system = 1, messages[0][content_tag]
    roles = {
        tags["user_tag"]: "user",
        tags["observation_tag"]: "tool",
        tags["assistant_tag"]: "assistant",
        tags["function_tag"]: "assistant",
    }
    accepted = ((tags["user_tag"], tags["observation_tag"]), (tags["assistant_tag"], tags["function_tag"]))
    prompt = []
    for turn, message in enumerate(messages[offset:]):
        role = message.get(role_tag)
        if role is None or role not in accepted[turn % 2]:
            allowed = [t for t in accepted[turn % 2] if t]
            raise DataFormatError(
                source,
                line,
                f"{column}[{turn + offset}].{role_tag}",
                f"expected one of {allowed} here (turns alternate user / assistant), got {role!r}",
            )
        prompt.append({"role": roles[role], "content": message[content_tag]})
    if len(prompt) % 2 == 0:
        raise DataFormatError(
            source,
            line,
            column,
            "a ranking example's messages must end with a user turn "
            f"(an odd number of turns), got {len(prompt)}",
        )
    answers = []
    for key in ("chosen", "rejected"):
        name, value = columns[key] or key, row.get(columns[key] or key)
        if not isinstance(value, dict) or not isinstance(value.get(content_tag), str):
            raise DataFormatError(source, line, name, f"expected one message with a string {content_tag!r}")
        if value.get(role_tag) not in accepted[1]:
            raise DataFormatError(
                source,
                line,
                f"{name}.{role_tag}",
                f"expected one of {[t for t in accepted[1] if t]}, got {value.get(role_tag)!r}",
            )
        answers.append(value[content_tag])
    return ([{"role": "system", "content": system}] if system else []) + prompt, answers[0], answers[1]


def convert_entry_row(row: Row, entry: DatasetEntry, source: str, line: int) -> Row:
    """One row of the entry's files -> a validated pair record (messages), meta naming the dataset."""
    prompt, chosen, rejected = (_alpaca if entry.formatting == "alpaca" else _sharegpt)(
        row, entry, source, line
    )
    record: Row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    margin = _margin(row, source, line)
    if margin is not None:
        record["margin"] = margin
    record = validate_record(record, "pair", source, line)
    if margin is None:
        record.pop("margin")
    meta = {**_check_constraints(row, source, line), "import_format": "llamafactory", "dataset": entry.name}
    return {**record, "meta": meta}


def convert_entry(info_path: str | Path, name: str, on_error: str = "raise") -> tuple[list[Row], SkipCounter]:
    """All records of the dataset `name` described in `info_path` (a LLaMA-Factory dataset_info.json)."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}; allowed: raise, skip")
    entry, skips, out = read_entry(info_path, name), SkipCounter(), []
    for path in entry.files:
        parquet = path.suffix == ".parquet"
        rows = read_parquet_rows(path) if parquet else read_rows(path)
        source = f"{path} (row)" if parquet else str(path)
        out += convert_rows(rows, lambda r, s, n: convert_entry_row(r, entry, s, n), source, on_error, skips)
    return out, skips
