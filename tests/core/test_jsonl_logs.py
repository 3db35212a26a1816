"""Every JSONL reader goes through ifpo.io.jsonl (issue 16): append-only logs keep their torn-tail
rules, and a bad byte in any of them is a located error naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifpo.builders.resumable import ResumableJsonl
from ifpo.builders.stats import BuildStats
from ifpo.constraints import ConstraintFormatError
from ifpo.eval.benchmarks.base import jsonl_rows
from ifpo.eval.judged import BenchmarkFormatError, iter_json_records
from ifpo.eval.progress import ProgressStore
from ifpo.io.errors import DataFormatError
from ifpo.io.jsonl import cut_from_line, cut_torn_tail, read_log

BAD_BYTE = b'{"key": "b", "value": "\xff"}\n'


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_read_log_stops_at_a_torn_or_unreadable_line(tmp_path):
    whole = _write(tmp_path / "whole.jsonl", b'{"a": 1}\n\n[2]\n')
    assert read_log(whole) == ([{"a": 1}, [2]], None)
    torn = _write(tmp_path / "torn.jsonl", b'{"a": 1}\n{"b": 2}')  # valid JSON, but no newline: torn
    assert read_log(torn) == ([{"a": 1}], 2)
    bad = _write(tmp_path / "bad.jsonl", b'{"a": 1}\n{"b": \n{"c": 3}\n')
    assert read_log(bad) == ([{"a": 1}], 2)
    assert read_log(_write(tmp_path / "empty.jsonl", b"")) == ([], None)


def test_cuts_are_byte_exact(tmp_path):
    path = _write(tmp_path / "log.jsonl", b'{"a": 1}\n{"b": 2}\n{"c"')
    assert cut_torn_tail(path) == 4 and path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert cut_torn_tail(path) == 0
    cut_from_line(path, 2)
    assert path.read_bytes() == b'{"a": 1}\n'


def _ledger_lines(fingerprint: str, ids: list[str], out: Path) -> bytes:
    lines, offset = [json.dumps({"fingerprint": fingerprint}, sort_keys=True)], 0
    for item in ids:
        offset += len(f'{{"id": "{item}"}}\n')
        lines.append(
            json.dumps({"id": item, "offset": offset, "stats": BuildStats().to_dict()}, sort_keys=True)
        )
    out.write_text("".join(f'{{"id": "{item}"}}\n' for item in ids))
    return "".join(line + "\n" for line in lines).encode()


def test_resumable_ledger_drops_a_torn_entry_and_its_records(tmp_path):
    out = tmp_path / "built.jsonl"
    ledger = tmp_path / "built.jsonl.progress.jsonl"
    whole = _ledger_lines("f1", ["a", "b"], out)
    torn_entry = json.dumps({"id": "c", "offset": 99, "stats": BuildStats().to_dict()}).encode()
    ledger.write_bytes(whole + torn_entry)  # parses as JSON, but its newline never made it
    out.write_text(out.read_text() + '{"id": "c"}\n')
    resumed = ResumableJsonl(out, "f1")
    assert sorted(resumed.done) == ["a", "b"]
    assert ledger.read_bytes() == whole
    assert out.read_text() == '{"id": "a"}\n{"id": "b"}\n'


def test_resumable_refuses_a_foreign_ledger_without_touching_it(tmp_path):
    out = tmp_path / "built.jsonl"
    ledger = tmp_path / "built.jsonl.progress.jsonl"
    data = _ledger_lines("f1", ["a"], out) + b'{"id": "b", "off'
    ledger.write_bytes(data)
    with pytest.raises(ValueError, match="different builder config"):
        ResumableJsonl(out, "other")
    assert ledger.read_bytes() == data


def test_progress_store_names_the_line_of_a_bad_byte(tmp_path):
    path = _write(tmp_path / "p.jsonl", b'{"key": "a", "value": 1}\n' + BAD_BYTE)
    with pytest.raises(ValueError, match=r"p\.jsonl:2: not a progress record \(invalid UTF-8 at byte 24"):
        ProgressStore(path)


def test_judged_jsonl_names_the_line_of_a_bad_byte(tmp_path):
    path = _write(tmp_path / "t.jsonl", b'{"a": 1}\n' + BAD_BYTE)
    with pytest.raises(BenchmarkFormatError, match=r"t\.jsonl:2: field '<row>': invalid UTF-8") as err:
        list(iter_json_records(path))
    assert isinstance(err.value, DataFormatError) and err.value.path == str(path) and err.value.line == 2


def test_benchmark_jsonl_rows_name_the_line_of_a_bad_byte(tmp_path):
    path = _write(tmp_path / "ifeval.jsonl", b'{"a": 1}\n\n' + BAD_BYTE)
    with pytest.raises(ConstraintFormatError, match=r"ifeval\.jsonl:line 3: invalid UTF-8 at byte 24") as err:
        list(jsonl_rows(path))
    assert err.value.reason == "invalid_utf8"
    assert list(jsonl_rows(_write(tmp_path / "ok.jsonl", b'{"a": 1}\n\n[2]\n'))) == [(1, {"a": 1}), (3, [2])]
