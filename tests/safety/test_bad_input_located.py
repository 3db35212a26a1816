"""Bad bytes and empty or fully-skipped inputs end in a located error or a counted skip (issue 15, items
7-8)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ifpo.builders.items import load_instructions
from ifpo.constraints.errors import ConstraintError
from ifpo.data.sources import load_file_records
from ifpo.importers import convert_file
from ifpo.importers.__main__ import main as import_main
from ifpo.io.errors import DataFormatError, SkipCounter
from ifpo.training.pipeline import build
from tests.hydra_helpers import compose_config

GOOD = {"prompt": "Say hi.", "chosen": "hi", "rejected": "HELLO"}
BAD_UTF8 = b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'  # Latin-1 bytes, not UTF-8


def _jsonl(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def _good(row=GOOD) -> bytes:
    return (json.dumps(row) + "\n").encode()


# ------------------------------------------------------------------ invalid UTF-8 (item 7)
def test_invalid_utf8_in_training_jsonl_is_located_or_skipped(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", _good(), BAD_UTF8, _good(dict(GOOD, chosen="yo")))
    with pytest.raises(DataFormatError, match=r"train.jsonl:2: field '<encoding>': invalid UTF-8 at byte 16"):
        load_file_records(path, "pair", "raise", SkipCounter())
    skips = SkipCounter()
    records = load_file_records(path, "pair", "skip", skips)
    assert len(records) == 2 and skips.total == 1
    assert "train.jsonl:2" in skips.summary()


def test_invalid_utf8_in_a_json_array_names_its_line(tmp_path):
    path = tmp_path / "train.json"
    path.write_bytes(
        b'[\n{"prompt": "a", "chosen": "b", "rejected": "c"},\n{"prompt": "\xff", "chosen": "b", "rejected": '
        b'"c"}\n]'
    )
    with pytest.raises(DataFormatError, match=r"train.json:3: field '<encoding>'"):
        load_file_records(path, "pair", "skip", SkipCounter())


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = _jsonl(tmp_path / "bom.jsonl", b"\xef\xbb\xbf" + _good())
    assert len(load_file_records(path, "pair", "raise", SkipCounter())) == 1


def test_invalid_utf8_in_a_parquet_string_column_is_a_counted_row(tmp_path):
    offsets = pa.array([0, 7, 14], pa.int32()).buffers()[1]
    prompts = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"Say hi.Say \xff\xfe!")])
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"prompt": prompts, "chosen": ["hi", "hi"], "rejected": ["HO", "HO"]}), path)
    with pytest.raises(DataFormatError, match=r"pairs.parquet \(row\):2: field '<row>': unreadable values"):
        load_file_records(path, "pair", "raise", SkipCounter())
    skips = SkipCounter()
    assert [r["prompt"][0]["content"] for r in load_file_records(path, "pair", "skip", skips)] == ["Say hi."]
    assert skips.total == 1


def test_a_file_that_is_not_parquet_names_the_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(
        DataFormatError, match=r"broken.parquet:1: field '<parquet>': not a readable Parquet file"
    ):
        load_file_records(path, "pair", "skip", SkipCounter())


@pytest.mark.parametrize("fmt", ["trl", "llamafactory", "iopo_sharegpt"])
def test_importers_locate_or_skip_invalid_utf8(tmp_path, fmt, capsys):
    path = _jsonl(tmp_path / "in.jsonl", BAD_UTF8)
    with pytest.raises(DataFormatError, match=r"in.jsonl:1: field '<encoding>'"):
        convert_file(fmt, path)
    records, skips = convert_file(fmt, path, "skip")
    assert records == [] and skips.total == 1
    assert import_main([fmt, str(path), str(tmp_path / "out.jsonl")]) == 2
    assert "in.jsonl:1" in capsys.readouterr().err


@pytest.mark.parametrize("meta", [[1, 2], "note", 3])
def test_trl_importer_refuses_a_non_object_meta_inside_the_skip_handling(tmp_path, meta):
    path = _jsonl(tmp_path / "trl.jsonl", _good(dict(GOOD, meta=meta)), _good(dict(GOOD, meta={"src": "x"})))
    with pytest.raises(DataFormatError, match=r"trl.jsonl:1: field 'meta': expected an object"):
        convert_file("trl", path)
    records, skips = convert_file("trl", path, "skip")
    assert len(records) == 1 and records[0]["meta"]["src"] == "x" and skips.total == 1


def test_lone_surrogate_escapes_are_refused_before_anything_is_written(tmp_path):
    path = _jsonl(
        tmp_path / "trl.jsonl", b'{"prompt": "a\\ud800b", "chosen": "x", "rejected": "y"}\n', _good()
    )
    with pytest.raises(DataFormatError, match=r"trl.jsonl:1: field '<text>': a lone surrogate"):
        load_file_records(path, "pair", "raise", SkipCounter())
    out = tmp_path / "out.jsonl"
    assert import_main(["trl", str(path), str(out), "--on-error", "skip"]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1


def test_builder_instructions_with_invalid_utf8_are_located_or_skipped(tmp_path):
    good = {
        "key": 1,
        "prompt": "Write a poem.",
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{}],
    }
    path = _jsonl(tmp_path / "instr.jsonl", _good(good), b'{"key": 2, "prompt": "\xff"}\n')
    with pytest.raises(ConstraintError, match=r"instr.jsonl:line 2: invalid UTF-8"):
        load_instructions(path)
    items, skipped = load_instructions(path, "skip")
    assert len(items) == 1 and skipped == {"bad_input:invalid_utf8": 1}


def test_negative_margin_is_refused(tmp_path):
    path = _jsonl(tmp_path / "rpo.jsonl", _good(dict(GOOD, margin=-2)))
    with pytest.raises(DataFormatError, match=r"rpo.jsonl:1: field 'margin': must be >= 0"):
        load_file_records(path, "pair", "raise", SkipCounter())


# ------------------------------------------------------------------ empty / fully skipped data (item 8)
FAST = [
    "debug=fast",
    "trainer.max_steps=1",
    "data=files",
    "data.num_workers=0",
    "data.batch_size=1",
    "data.eval_batch_size=1",
    "data.max_length=256",
    "data.max_prompt_length=128",
]


def _datamodule(tmp_path, train, val, *extra):
    cfg = compose_config(
        "train",
        [
            *FAST,
            f"data.train_files=[{train}]",
            f"data.val_files=[{val}]" if val else "data.val_files=[]",
            *extra,
        ],
        output_dir=tmp_path,
    )
    module, datamodule, trainer = build(cfg)
    return module, datamodule, trainer


def test_an_empty_validation_file_is_refused_unless_validation_is_off(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", _good(), _good(dict(GOOD, chosen="yo")))
    val = _jsonl(tmp_path / "val.jsonl", b"\n")
    module, datamodule, trainer = _datamodule(tmp_path, train, val)
    with pytest.raises(
        ValueError, match=r"no validation examples in .*val.jsonl \(no rows\).*trainer.limit_val_batches=0"
    ):
        trainer.fit(module, datamodule=datamodule)
    module, datamodule, trainer = _datamodule(tmp_path / "off", train, val, "trainer.limit_val_batches=0")
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 1


def test_a_fully_skipped_validation_file_says_why(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", _good())
    val = _jsonl(tmp_path / "val.jsonl", _good(dict(GOOD, rejected="hi")), BAD_UTF8)
    module, datamodule, trainer = _datamodule(tmp_path, train, val, "data.on_error=skip")
    with pytest.raises(
        ValueError, match=r"2 rows skipped .*identical to chosen.*val.jsonl:1.*invalid UTF-8.*val.jsonl:2"
    ):
        trainer.fit(module, datamodule=datamodule)


def test_when_every_training_row_is_skipped_the_reasons_are_printed(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", _good(dict(GOOD, rejected="hi")), _good({"prompt": "x"}))
    _, datamodule, _ = _datamodule(tmp_path, train, None, "data.on_error=skip")
    with pytest.raises(
        ValueError, match=r"no training records.*2 rows skipped.*identical to chosen.*train.jsonl:1"
    ):
        datamodule.setup("fit")


def test_length_drops_name_the_file_and_line(tmp_path):
    long_row = dict(GOOD, chosen="word " * 400)
    train = _jsonl(tmp_path / "train.jsonl", _good(), _good(long_row), _good(dict(GOOD, chosen="yo")))
    _, datamodule, _ = _datamodule(tmp_path, train, None)
    datamodule.setup("fit")
    counter = datamodule.skips["train"]
    assert counter.total == 1
    assert list(counter.examples.values()) == [f"{train}:2"]
    assert "source" not in datamodule.train_set.column_names
