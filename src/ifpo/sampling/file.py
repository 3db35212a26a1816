"""Responses from a JSONL file (offline data building and tests): ``{"id": ..., "responses": [...]}``.

Answers are looked up by the request's ``key`` (the instruction's source id), whatever the
prompt: so for IOPO's x2 the file backend offers the same instruction's recorded answers,
and the builder keeps one only if the rule checks say it fits x2 and not x1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ifpo.io.errors import DataFormatError
from ifpo.io.jsonl import BadLine, read_jsonl
from ifpo.sampling.base import SampleRequest


def load_responses_file(path: str | Path) -> dict[str, list[str]]:
    """id -> responses; a bad line raises naming the file, line and field."""
    source = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"responses file not found: {source}")
    table: dict[str, list[str]] = {}
    for number, row in read_jsonl(path, check_unicode=False):
        if isinstance(row, BadLine):
            raise DataFormatError(
                source, number, "<encoding>" if row.reason == "invalid_utf8" else "<json>", row.problem
            )
        if not isinstance(row, dict):
            raise DataFormatError(source, number, "<row>", "expected a JSON object")
        key = row.get("id", row.get("key"))
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise DataFormatError(source, number, "id", f"missing or not a string/integer: {key!r}")
        responses = row.get("responses")
        if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
            raise DataFormatError(source, number, "responses", "expected a list of strings")
        if str(key) in table:
            raise DataFormatError(source, number, "id", f"duplicate id {key!r}")
        table[str(key)] = responses
    return table


class ResponsesFileSampler:
    """The first ``n`` recorded responses of each request's key (seed is ignored: the file is fixed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.table = load_responses_file(path)

    def sample(self, requests: Sequence[SampleRequest], n: int, seed: int) -> list[list[str]]:
        out = []
        for request in requests:
            if request.key not in self.table:
                raise KeyError(f"{self.path}: no responses for id {request.key!r}")
            out.append(list(self.table[request.key][:n]))
        return out
