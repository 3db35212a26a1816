"""Read the records of an offline `.wandb` file (test helper).

wandb >= 0.2x writes offline runs through wandb-core and no longer ships a Python reader (the old
`wandb.sdk.internal.datastore`), and writes no files/wandb-summary.json offline. The file is W&B's
documented datastore layout: a 7-byte header (":W&B", magic 0xBEE1, version) followed by LevelDB
log blocks of 32 KiB whose chunks (7-byte header: crc, length, type) carry serialized
`wandb_internal_pb2.Record` protobufs, decoded here with wandb's own protobuf classes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[Any]:
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B datastore file")
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # block trailer padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        if kind == FULL:
            pending = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            pending += chunk
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        out.append(record)
        pending = b""
    return out


def _value(json_text: str) -> Any:
    import json

    return json.loads(json_text)


def history(path: Path) -> list[dict[str, Any]]:
    """Each logged history row as {key: value}."""
    return [{(i.key or "/".join(i.nested_key)): _value(i.value_json) for i in r.history.item}
            for r in records(path) if r.WhichOneof("record_type") == "history"]


def summary(path: Path) -> dict[str, Any]:
    """The final summary: every summary update applied in order."""
    out: dict[str, Any] = {}
    for r in records(path):
        if r.WhichOneof("record_type") == "summary":
            for item in r.summary.update:
                out[item.key or "/".join(item.nested_key)] = _value(item.value_json)
    return out


def config(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in records(path):
        if r.WhichOneof("record_type") == "config":
            for item in r.config.update:
                out[item.key or "/".join(item.nested_key)] = _value(item.value_json)
    return out


def run_info(path: Path) -> Any:
    return next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
