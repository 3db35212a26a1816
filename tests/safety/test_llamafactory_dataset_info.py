"""LLaMA-Factory `dataset_info.json` entries imported with LLaMA-Factory's own semantics (issue 14, item 6).

Entries and rows follow the layouts of LLaMA-Factory's data/README.md (alpaca and sharegpt
preference datasets, the OpenAI-style `messages` layout with role/content tags) and the shape of
its shipped `dpo_en_demo` entry; the texts are our own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ifpo.data.sources import load_file_records
from ifpo.importers import convert_entry
from ifpo.importers.__main__ import main
from ifpo.io.errors import DataFormatError, SkipCounter

SHAREGPT_ROW = {
    "conversations": [{"from": "human", "value": "Name a fruit."}, {"from": "gpt", "value": "Apple."},
                      {"from": "human", "value": "Another, in capitals."}],
    "chosen": {"from": "gpt", "value": "PEAR."},
    "rejected": {"from": "gpt", "value": "pear."},
}
ALPACA_ROW = {
    "instruction": "Summarise the text.",
    "input": "Tea is a drink made from leaves.",
    "chosen": "Tea: a leaf drink.",
    "rejected": "Tea is a drink made from leaves, as the text says.",
    "system": "Be brief.",
    "history": [["Hi", "Hello"]],
}
OPENAI_ROW = {
    "messages": [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Colour of the sky?"},
    ],
    "chosen": {"role": "assistant", "content": "Blue."},
    "rejected": {"role": "assistant", "content": "The sky is usually blue."},
}


def _setup(tmp_path: Path, entries: dict, files: dict[str, list]) -> Path:
    for name, rows in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".jsonl"):
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            path.write_text(json.dumps(rows, indent=2))
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps(entries, indent=2))
    return info


def test_sharegpt_ranking_entry_like_dpo_en_demo(tmp_path):
    info = _setup(
        tmp_path,
        {
            "my_dpo": {
                "file_name": "my_dpo.json",
                "ranking": True,
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
            }
        },
        {"my_dpo.json": [SHAREGPT_ROW]},
    )
    (record,), skips = convert_entry(info, "my_dpo")
    assert record["prompt"] == [
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."},
        {"role": "user", "content": "Another, in capitals."},
    ]
    assert record["chosen"] == [{"role": "assistant", "content": "PEAR."}]
    assert record["rejected"] == [{"role": "assistant", "content": "pear."}]
    assert record["meta"] == {"import_format": "llamafactory", "dataset": "my_dpo"} and skips.total == 0


def test_alpaca_ranking_uses_only_the_listed_columns(tmp_path):
    # As in LLaMA-Factory: an entry that lists `columns` leaves every unlisted column unset, so this
    # row's system and history keys are not read; a second entry lists them and gets them.
    readme_columns = {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}
    info = _setup(
        tmp_path,
        {
            "plain": {"file_name": "pairs.json", "ranking": True, "columns": readme_columns},
            "full": {
                "file_name": "pairs.json",
                "ranking": True,
                "columns": {**readme_columns, "system": "system", "history": "history"},
            },
        },
        {"pairs.json": [ALPACA_ROW]},
    )
    (plain,), _ = convert_entry(info, "plain")
    assert plain["prompt"] == [
        {"role": "user", "content": "Summarise the text.\nTea is a drink made from leaves."}
    ]
    assert plain["chosen"][0]["content"] == "Tea: a leaf drink."
    (full,), _ = convert_entry(info, "full")
    assert full["prompt"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Summarise the text.\nTea is a drink made from leaves."},
    ]


def test_messages_layout_with_role_and_content_tags_and_a_system_message(tmp_path):
    tags = {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
        "system_tag": "system",
    }
    info = _setup(
        tmp_path,
        {
            "oa": {
                "file_name": "oa.jsonl",
                "formatting": "sharegpt",
                "ranking": True,
                "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"},
                "tags": tags,
            }
        },
        {"oa.jsonl": [OPENAI_ROW]},
    )
    (record,), _ = convert_entry(info, "oa")
    assert record["prompt"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Colour of the sky?"},
    ]
    assert record["rejected"][0]["content"] == "The sky is usually blue."


def test_custom_tags_and_a_folder_of_jsonl_and_parquet_files(tmp_path):
    row = {
        "dialog": [{"who": "Q", "text": "Say hi."}],
        "good": {"who": "A", "text": "hi"},
        "bad": {"who": "A", "text": "HELLO"},
        "margin": 2,
    }
    entry = {
        "file_name": "parts",
        "ranking": True,
        "formatting": "sharegpt",
        "columns": {"messages": "dialog", "chosen": "good", "rejected": "bad"},
        "tags": {"role_tag": "who", "content_tag": "text", "user_tag": "Q", "assistant_tag": "A"},
    }
    info = _setup(tmp_path, {"custom": entry}, {"parts/a.jsonl": [row]})
    pq.write_table(
        pa.Table.from_pylist([row, dict(row, good={"who": "Q", "text": "hi"})]),
        tmp_path / "parts" / "b.parquet",
    )
    with pytest.raises(
        DataFormatError, match=r"b.parquet \(row\):2: field 'good.who': expected one of \['A'\]"
    ):
        convert_entry(info, "custom")
    records, skips = convert_entry(info, "custom", "skip")
    assert len(records) == 2 and all(r["margin"] == 2.0 for r in records) and skips.total == 1


@pytest.mark.parametrize(
    "row,field,problem",
    [
        (
            dict(
                SHAREGPT_ROW,
                conversations=[
                    {"from": "human", "value": "a"},
                    {"from": "human", "value": "b"},
                    {"from": "human", "value": "c"},
                ],
            ),
            "conversations[1].from",
            "turns alternate user / assistant",
        ),
        (
            dict(SHAREGPT_ROW, conversations=SHAREGPT_ROW["conversations"][:2]),
            "conversations",
            "must end with a user turn",
        ),
        (dict(SHAREGPT_ROW, chosen="PEAR."), "chosen", "expected one message"),
        (dict(SHAREGPT_ROW, rejected={"from": "human", "value": "x"}), "rejected.from", "expected one of"),
        (dict(SHAREGPT_ROW, conversations=[{"from": "human"}]), "conversations[0]", "string 'value'"),
    ],
)
def test_rows_llamafactory_would_drop_are_located(tmp_path, row, field, problem):
    entry = {
        "file_name": "d.jsonl",
        "ranking": True,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
    }
    info = _setup(tmp_path, {"d": entry}, {"d.jsonl": [SHAREGPT_ROW, row]})
    with pytest.raises(DataFormatError, match=re.escape(f"d.jsonl:2: field '{field}'")) as err:
        convert_entry(info, "d")
    assert problem in str(err.value)
    records, skips = convert_entry(info, "d", "skip")
    assert len(records) == 1 and skips.total == 1


@pytest.mark.parametrize(
    "entry,problem",
    [
        ({"hf_hub_url": "someone/data", "ranking": True}, "needs a download"),
        ({"file_name": "x.json"}, "not a preference dataset"),
        ({"file_name": "x.json", "ranking": True, "columns": {"prompt": "instruction"}}, "columns.chosen"),
        (
            {
                "file_name": "x.json",
                "ranking": True,
                "formatting": "openai2",
                "columns": {"chosen": "c", "rejected": "r"},
            },
            "expected alpaca or sharegpt",
        ),
        (
            {"file_name": "missing.json", "ranking": True, "columns": {"chosen": "c", "rejected": "r"}},
            "does not exist",
        ),
    ],
)
def test_entries_that_cannot_be_imported_say_why(tmp_path, entry, problem):
    info = _setup(tmp_path, {"e": entry}, {"x.json": []})
    with pytest.raises(DataFormatError, match=problem):
        convert_entry(info, "e")


def test_unknown_entry_lists_the_known_ones(tmp_path):
    info = _setup(
        tmp_path, {"alpha": {"file_name": "x.json"}, "beta": {"file_name": "x.json"}}, {"x.json": []}
    )
    with pytest.raises(DataFormatError, match="no such dataset entry; entries: alpha, beta"):
        convert_entry(info, "gamma")


def test_command_line_import_feeds_training(tmp_path, capsys):
    info = _setup(
        tmp_path,
        {
            "my_dpo": {
                "file_name": "my_dpo.json",
                "ranking": True,
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
            }
        },
        {"my_dpo.json": [SHAREGPT_ROW, SHAREGPT_ROW]},
    )
    out = tmp_path / "pairs.jsonl"
    assert main(["llamafactory", "my_dpo", str(out), "--dataset-info", str(info)]) == 0
    assert "2 records" in capsys.readouterr().out
    assert len(load_file_records(out, "pair", "raise", SkipCounter())) == 2
    assert main(["llamafactory", "nope", str(out), "--dataset-info", str(info)]) == 2
    assert "no such dataset entry" in capsys.readouterr().err
