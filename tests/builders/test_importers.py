"""Importers on small hand-written fixtures: conversions, located errors, counted skips, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ifpo.importers import convert_file
from ifpo.importers.__main__ import main
from ifpo.io.errors import DataFormatError


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_llamafactory_alpaca_and_sharegpt_with_margin(tmp_path: Path) -> None:
    src = _write(tmp_path / "lf.jsonl", [
        {"instruction": "Write a haiku.", "input": "About tea.", "system": "Be brief.",
         "chosen": "Steam rises", "rejected": "Tea is a drink, a long essay...", "margin": 3},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
                           {"from": "human", "value": "Answer in caps."}],
         "chosen": {"from": "gpt", "value": "OK"}, "rejected": {"from": "gpt", "value": "ok"}},
    ])
    (first, second), skips = convert_file("llamafactory", src)
    assert first["prompt"] == [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Write a haiku.\nAbout tea."}]
    assert first["chosen"] == [{"role": "assistant", "content": "Steam rises"}] and first["margin"] == 3.0
    assert (
        second["prompt"][-1] == {"role": "user", "content": "Answer in caps."} and len(second["prompt"]) == 3
    )
    assert "margin" not in second and second["rejected"][0]["content"] == "ok"
    assert skips.total == 0


def test_iopo_sharegpt_becomes_quad_with_rejected_as_y2(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "iopo.jsonl",
        [
            {
                "conversations": [
                    {"from": "human", "value": "x1: in 3 words"},
                    {"from": "human", "value": "x2: in 5 words"},
                ],
                "chosen": {"from": "gpt", "value": "one two three"},
                "rejected": {"from": "gpt", "value": "one two three four five"},
            }
        ],
    )
    [quad], _ = convert_file("iopo_sharegpt", src)
    assert quad["x1"] == [{"role": "user", "content": "x1: in 3 words"}]
    assert quad["x2"] == [{"role": "user", "content": "x2: in 5 words"}]
    assert (
        quad["y1"][0]["content"] == "one two three" and quad["y2"][0]["content"] == "one two three four five"
    )


def test_trl_passthrough_validates_and_checks_constraints(tmp_path: Path) -> None:
    good = {
        "prompt": "Say hi",
        "chosen": "hi",
        "rejected": "bye",
        "margin": 1,
        "meta": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    }
    [record], _ = convert_file("trl", _write(tmp_path / "ok.jsonl", [good]))
    assert record["margin"] == 1.0 and record["meta"]["constraints"] == [
        {"kind": "punctuation:no_comma", "kwargs": {}}
    ]
    bad_id = {**good, "meta": {"instruction_id_list": ["no:such_kind"], "kwargs": [{}]}}
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:1: field 'instruction_id_list\[0\]'"):
        convert_file("trl", _write(tmp_path / "bad.jsonl", [bad_id]))
    bad_kwargs = {
        **good,
        "instruction_id_list": ["length_constraints:number_words"],
        "kwargs": [{"relation": "less than", "num_words": "many"}],
    }
    with pytest.raises(DataFormatError, match=r"field 'kwargs\[0\]\.num_words'"):
        convert_file("trl", _write(tmp_path / "bad2.jsonl", [bad_kwargs]))


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ('{"instruction": "x", "chosen": "a"', "<json>"),
        ({"instruction": "x", "chosen": "a"}, "rejected"),
        ({"instruction": 3, "chosen": "a", "rejected": "b"}, "instruction"),
        ({"instruction": "x", "chosen": "   ", "rejected": "b"}, "chosen"),
        ({"instruction": "x", "chosen": "a", "rejected": "b", "margin": "big"}, "margin"),
    ],
)
def test_llamafactory_errors_name_file_line_and_field(tmp_path: Path, row, field: str) -> None:
    ok = {"instruction": "x", "chosen": "a", "rejected": "b"}
    src = _write(tmp_path / "lf.jsonl", [ok, row])
    with pytest.raises(DataFormatError) as info:
        convert_file("llamafactory", src)
    assert (info.value.source, info.value.line, info.value.field) == (str(src), 2, field)
    records, skips = convert_file("llamafactory", src, on_error="skip")
    assert len(records) == 1 and skips.total == 1


def test_cli_converts_and_reports_errors(tmp_path: Path, capsys) -> None:
    src = _write(
        tmp_path / "lf.jsonl",
        [{"instruction": "x", "chosen": "a", "rejected": "b", "margin": 2}, {"instruction": "y"}],
    )
    out = tmp_path / "out.jsonl"
    assert main(["llamafactory", str(src), str(out)]) == 2
    assert "lf.jsonl:2: field 'chosen'" in capsys.readouterr().err
    assert main(["llamafactory", str(src), str(out), "--on-error", "skip"]) == 0
    assert [json.loads(line)["margin"] for line in out.read_text().splitlines()] == [2.0]
    assert "1 rows skipped" in capsys.readouterr().out
    run = subprocess.run(
        [sys.executable, "-m", "ifpo.importers", "--help"], check=False, capture_output=True, text=True
    )
    assert run.returncode == 0 and "iopo_sharegpt" in run.stdout
