"""Fuzz: randomly corrupted JSONL / JSON / Parquet inputs never end in a raw traceback (issue 15).

Valid seed rows of each reader (training pairs and quads, builder instructions, the three
importer formats) are corrupted at random: bytes (flips, invalid UTF-8, NULs, truncation, a
UTF-16 file), types (fields replaced by other JSON values, dropped, rows that are not objects),
encodings (lone surrogates, BOMs, Latin-1 text) and sizes (empty files, huge strings, deep
nesting, many rows). Every case must either load, with every non-blank row either returned or
counted as a skip, or raise the project's located error naming the file and a line. The seed is
fixed, so a failure names a reproducible case; the number of cases tried is printed.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ifpo.builders.items import load_instructions
from ifpo.constraints.errors import ConstraintError
from ifpo.data.sources import load_file_records
from ifpo.importers import convert_entry, convert_file
from ifpo.importers.__main__ import main as import_main
from ifpo.io.errors import DataFormatError, SkipCounter

SEED = 20261201
CASES_PER_TARGET = 60

PAIR = {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}],
        "chosen": "hi", "rejected": "HELLO THERE", "margin": 2}
QUAD = {"x1": "Write a poem.", "x2": "Write a poem in capitals.", "y1": "roses", "y2": "ROSES"}
INSTRUCTION = {"key": 7, "prompt": "Write a story.", "instruction_id_list": ["punctuation:no_comma",
               "length_constraints:number_words"], "kwargs": [{}, {"relation": "at least", "num_words": 20}]}
LLAMAFACTORY = {"instruction": "Summarise.", "input": "Tea is a drink.", "chosen": "Tea: a drink.",
                "rejected": "Tea.", "history": [["hi", "hello"]], "margin": 1.5}
SHAREGPT = {"conversations": [{"from": "human", "value": "Write a poem."},
                              {"from": "human", "value": "Write a poem in capitals."}],
            "chosen": {"from": "gpt", "value": "roses"}, "rejected": {"from": "gpt", "value": "ROSES"}}
TRL = dict(PAIR, meta={"source": "x"})

SCALARS: list[Any] = [
    None,
    True,
    0,
    -1,
    3.5,
    1e308,
    "",
    " ",
    "x",
    "\u0000",
    "\ud800",
    "é" * 3,
    [],
    {},
    [None],
    [{"role": "user"}],
    [{"role": "wizard", "content": "x"}],
    {"from": "gpt"},
    [[1, 2]],
]


def _value(rng: random.Random) -> Any:
    pick = rng.random()
    if pick < 0.6:
        return rng.choice(SCALARS)
    if pick < 0.8:
        return "w" * rng.choice([10_000, 200_000])  # big strings
    nested: Any = "deep"
    for _ in range(rng.choice([50, 3000])):  # deep nesting (past the JSON decoder's recursion limit)
        nested = [nested]
    return nested


def _mutate_row(row: dict[str, Any], rng: random.Random) -> Any:
    """A type-level corruption of one row."""
    row = json.loads(json.dumps(row))
    kind = rng.randrange(6)
    keys = list(row)
    if kind == 0 and keys:
        row[rng.choice(keys)] = _value(rng)
    elif kind == 1 and keys:
        del row[rng.choice(keys)]
    elif kind == 2:
        row[rng.choice(["extra", "meta", "margin", "system", "kwargs", "messages"])] = _value(rng)
    elif kind == 3:
        return _value(rng)  # not an object at all
    elif kind == 4:
        for key in keys:  # nested values: corrupt inside lists / dicts
            if isinstance(row[key], list) and row[key]:
                i = rng.randrange(len(row[key]))
                row[key][i] = _value(rng) if rng.random() < 0.5 else {"role": "user", "content": _value(rng)}
            elif isinstance(row[key], dict):
                row[key][rng.choice([*row[key], "value", "content"])] = _value(rng)
    else:
        for key in keys:
            if isinstance(row[key], str) and row[key]:
                row[key] = row[key][: rng.randrange(len(row[key]))]  # shortened / emptied text
    return row


def _dumps(value: Any) -> bytes:
    try:
        return json.dumps(value).encode()
    except RecursionError:
        return b"[" * 5000 + b'"deep"' + b"]" * 5000


def _corrupt_bytes(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0 and data:
        pos = rng.randrange(len(data))
        return data[:pos] + bytes([rng.randrange(256)]) + data[pos + 1 :]
    if kind == 1:
        pos = rng.randrange(len(data) + 1)
        return (
            data[:pos]
            + rng.choice([b"\xff", b"\xc3", b"\xe9", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf"])
            + data[pos:]
        )
    if kind == 2:
        return data[: rng.randrange(len(data) + 1)]  # truncated mid-row
    if kind == 3:
        return data.decode("utf-8", "replace").encode("utf-16")  # a UTF-16 file
    if kind == 4:
        return data.replace(b"\n", b"\r")  # old Mac line ends: one long line
    if kind == 5:
        return b""  # empty file
    if kind == 6:
        return data.decode("utf-8", "replace").encode("latin-1", "replace")
    return data + b"\n\n   \n" + data  # blank lines and repeated rows


def _jsonl_case(seed_row: dict[str, Any], rng: random.Random) -> bytes:
    rows = [
        seed_row if rng.random() < 0.5 else _mutate_row(seed_row, rng) for _ in range(rng.choice([1, 3, 40]))
    ]
    data = b"".join(_dumps(r) + b"\n" for r in rows)
    return _corrupt_bytes(data, rng) if rng.random() < 0.6 else data


def _nonblank_lines(data: bytes) -> int:
    return sum(1 for line in data.split(b"\n") if line.strip())


def _assert_located(err: Exception, path: Path) -> None:
    assert str(path) in str(err), f"error does not name the file: {err}"
    assert isinstance(err.line, int) and err.line >= 1, f"error has no line: {err}"  # type: ignore[attr-defined]


class Tally:
    def __init__(self) -> None:
        self.cases = 0
        self.outcomes: dict[str, int] = {"loaded": 0, "located_error": 0}

    def check(self, path: Path, run, expected_rows: int | None, skip: bool) -> None:
        """`run()` returns (n_returned, n_skipped) or raises a located error; nothing else is allowed."""
        self.cases += 1
        try:
            returned, skipped = run()
        except (DataFormatError, ConstraintError) as err:
            _assert_located(err, path)
            self.outcomes["located_error"] += 1
            return
        self.outcomes["loaded"] += 1
        if skip and expected_rows is not None:
            assert returned + skipped == expected_rows, (  # never a silent drop
                f"{path}: {expected_rows} rows, {returned} returned + {skipped} skipped"
            )


@pytest.fixture(scope="module")
def tally(request):
    t = Tally()
    yield t
    line = f"fuzz: {t.cases} corrupted-input cases tried (seed {SEED}): {t.outcomes}"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown even when pytest captures output
        print("\n" + line)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind,seed_row", [("pair", PAIR), ("quad", QUAD)])
def test_training_jsonl_and_json(tmp_path, tally, kind, seed_row):
    rng = random.Random(f"{SEED}-train-{kind}")
    for case in range(CASES_PER_TARGET):
        data = _jsonl_case(seed_row, rng)
        path = _write(tmp_path, f"{kind}{case}.jsonl", data)
        for on_error in ("raise", "skip"):

            def run(path=path, on_error=on_error):
                skips = SkipCounter()
                return len(load_file_records(path, kind, on_error, skips)), skips.total

            tally.check(path, run, _nonblank_lines(data), on_error == "skip")
        # the same rows as one JSON array
        rows = [
            seed_row if rng.random() < 0.5 else _mutate_row(seed_row, rng) for _ in range(rng.choice([1, 5]))
        ]
        array = b"[" + b",\n".join(_dumps(r) for r in rows) + b"]"
        array = _corrupt_bytes(array, rng) if rng.random() < 0.5 else array
        json_path = _write(tmp_path, f"{kind}{case}.json", array)

        def run_json(path=json_path):
            skips = SkipCounter()
            return len(load_file_records(path, kind, "skip", skips)), skips.total

        tally.check(json_path, run_json, None, True)


def _parquet_table(rng: random.Random, n: int) -> pa.Table:
    columns: dict[str, Any] = {
        "prompt": [rng.choice(["Say hi.", "", None, "é" * 50, "w" * 50_000]) for _ in range(n)],
        "chosen": [rng.choice(["hi", "", None, "HELLO"]) for _ in range(n)],
        "rejected": [rng.choice(["HELLO", "hi", None]) for _ in range(n)],
    }
    table = pa.table(columns)
    change = rng.randrange(5)
    if change == 0:
        table = table.set_column(0, "prompt", pa.array([rng.randrange(9) for _ in range(n)]))  # wrong type
    elif change == 1:
        table = table.drop_columns(["rejected"])
    elif change == 2:  # invalid UTF-8 inside a string column (written without validation)
        raw = [b"Say \xff" if rng.random() < 0.5 else b"Say hi" for _ in range(n)]
        offsets = pa.array([sum(len(r) for r in raw[:i]) for i in range(n + 1)], pa.int32()).buffers()[1]
        table = table.set_column(
            0, "prompt", pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(b"".join(raw))])
        )
    elif change == 3:
        table = table.set_column(1, "chosen", pa.array([[{"role": "assistant", "content": "x"}]] * n))
    elif change == 4:
        table = table.append_column(
            "margin", pa.array([rng.choice([1.0, -1.0, float("nan"), None]) for _ in range(n)])
        )
    return table


def test_training_parquet(tmp_path, tally):
    rng = random.Random(f"{SEED}-parquet")
    for case in range(CASES_PER_TARGET):
        n = rng.choice([0, 1, 7, 2000])
        path = tmp_path / f"p{case}.parquet"
        pq.write_table(_parquet_table(rng, n), path, row_group_size=max(1, n // 3 or 1))
        expected: int | None = n
        if rng.random() < 0.4:  # damage the file's bytes too
            data = bytearray(path.read_bytes())
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            path.write_bytes(bytes(data[: rng.randrange(len(data) + 1)] if rng.random() < 0.3 else data))
            expected = None

        def run(path=path):
            skips = SkipCounter()
            return len(load_file_records(path, "pair", "skip", skips)), skips.total

        tally.check(path, run, expected, True)


def test_builder_instructions(tmp_path, tally):
    rng = random.Random(f"{SEED}-builder")
    seed_rows = [
        INSTRUCTION,
        dict(
            INSTRUCTION, messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "Write."}]
        ),
        dict(INSTRUCTION, free_text_constraints=["Mention tea."]),
    ]
    for case in range(CASES_PER_TARGET):
        seed_row = rng.choice(seed_rows)
        rows = [
            dict(seed_row, key=i) if rng.random() < 0.5 else _mutate_row(dict(seed_row, key=i), rng)
            for i in range(rng.choice([1, 3, 30]))
        ]
        data = b"".join(_dumps(r) + b"\n" for r in rows)
        data = _corrupt_bytes(data, rng) if rng.random() < 0.5 else data
        path = _write(tmp_path, f"instr{case}.jsonl", data)
        for on_error in ("raise", "skip"):

            def run(path=path, on_error=on_error):
                items, skipped = load_instructions(path, on_error)
                return len(items), sum(skipped.values())

            tally.check(path, run, _nonblank_lines(data), on_error == "skip")


@pytest.mark.parametrize(
    "fmt,seed_row", [("trl", TRL), ("llamafactory", LLAMAFACTORY), ("iopo_sharegpt", SHAREGPT)]
)
def test_importers(tmp_path, tally, capsys, fmt, seed_row):
    rng = random.Random(f"{SEED}-import-{fmt}")
    for case in range(CASES_PER_TARGET):
        data = _jsonl_case(seed_row, rng)
        path = _write(tmp_path, f"{fmt}{case}.jsonl", data)

        def run(path=path):
            records, skips = convert_file(fmt, path, "skip")
            return len(records), skips.total

        tally.check(path, run, _nonblank_lines(data), True)
        # the command line end to end, output file included: exit 0, or 2 with a located message
        out = tmp_path / f"{fmt}{case}.out.jsonl"
        tally.cases += 1
        code = import_main([fmt, str(path), str(out), "--on-error", rng.choice(["raise", "skip"])])
        captured = capsys.readouterr()
        assert code in (0, 2), captured.err
        tally.outcomes[f"cli_exit_{code}"] = tally.outcomes.get(f"cli_exit_{code}", 0) + 1
        if code == 2:
            assert re.search(rf"{re.escape(str(path))}:\d+", captured.err), captured.err
        else:
            for line in out.read_text(encoding="utf-8").splitlines():
                json.loads(line)  # what was written reads back


LF_ENTRIES = {
    "sg": {
        "file_name": "sg.jsonl",
        "ranking": True,
        "formatting": "sharegpt",
        "columns": {
            "messages": "conversations",
            "chosen": "chosen",
            "rejected": "rejected",
            "system": "system",
        },
    },
    "al": {
        "file_name": "al.jsonl",
        "ranking": True,
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "chosen": "chosen",
            "rejected": "rejected",
            "history": "history",
            "system": "system",
        },
    },
}


@pytest.mark.parametrize("name,seed_row", [("sg", dict(SHAREGPT, system="Be kind.")), ("al", LLAMAFACTORY)])
def test_llamafactory_dataset_info_entries(tmp_path, tally, name, seed_row):
    rng = random.Random(f"{SEED}-dataset-info-{name}")
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps(LF_ENTRIES))
    for _ in range(CASES_PER_TARGET // 2):
        data = _jsonl_case(seed_row, rng)
        _write(tmp_path, LF_ENTRIES[name]["file_name"], data)
        path = tmp_path / LF_ENTRIES[name]["file_name"]

        def run(path=path):
            records, skips = convert_entry(info, name, "skip")
            return len(records), skips.total

        tally.check(path, run, _nonblank_lines(data), True)
