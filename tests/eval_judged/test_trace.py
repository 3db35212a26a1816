"""TRACE: the released layout, the authors' judge template and score parsing, IF-S / IF-M."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifpo.eval.judged import BenchmarkFormatError
from ifpo.eval.trace_bench import (
    JUDGE_SYSTEM_PROMPT,
    judge_messages,
    judge_prompt,
    judge_record,
    load_trace,
    parse_fine_grained,
    parse_overall,
    score_trace,
)
from tests.eval_judged.official_judges import trace_answer
from tests.eval_judged.release_files import trace_row, write_trace

ROWS = [
    trace_row(
        0, "为一首歌曲写一个简短描述", ["描述需采用文艺的语气风格；"], '"Hotel California" — 老鹰乐队。'
    ),
    trace_row(1, "Name two fruits.", ["mention 'apple'", "mention 'kiwi'"]),
    trace_row(2, "Write a line.", ["say 'sea'", "say 'sky'", "say 'sun'"]),
]


def test_loads_the_released_layout(tmp_path: Path) -> None:
    rows = [*ROWS, {**trace_row(3, "x", ["c"]), "id": 3}]  # an int id is accepted and kept as text
    items = load_trace(write_trace(tmp_path / "202409_trace_evaluation.jsonl", rows))
    assert [i.id for i in items] == ["0", "1", "2", "3"]
    assert [i.multi for i in items] == [False, True, True, False]
    assert items[0].messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert items[0].messages[1]["content"].endswith('# Inputs:\n"Hotel California" — 老鹰乐队。\n')
    assert items[1].constraint_list == ("1. mention 'apple'", "2. mention 'kiwi'")
    assert items[1].constraints == "1. mention 'apple'\n2. mention 'kiwi'"
    assert items[1].query == ROWS[1]["messages"][1]["content"]


def test_judge_prompt_is_the_authors_template(tmp_path: Path) -> None:
    item = load_trace(write_trace(tmp_path / "t.jsonl", ROWS[1:2]))[0]
    prompt = judge_prompt(item, "an apple")
    assert prompt.startswith(
        "[System]\nYou are a fair judge, and please evaluate the quality of an AI assistant"
    )
    assert (
        'Fine Grained Score: [{"密码至少8个字符": 10, "包含1个大写字母": 0, '
        '"包含1个小写字母": 0, "包含2个数字": 10}]'
        in prompt
    )
    assert prompt.endswith(
        f"/ *Input * /\n—INPUT—\n< query >:\n{item.messages[-1]['content']}\n< constraints >:\n"
        "1. mention 'apple'\n2. mention 'kiwi'\n< response >:\nan apple\n\n—OUTPUT—"
    )
    messages = judge_messages(item, "an apple")
    assert (
        messages[0] == {"role": "system", "content": JUDGE_SYSTEM_PROMPT} and messages[1]["content"] == prompt
    )
    # The template's rule: a question containing "NULL" is replaced by the description.
    odd = load_trace(write_trace(tmp_path / "n.jsonl", [trace_row(9, "Describe NULL.", ["c"])]))[0]
    assert "< query >:\nDescribe NULL.\n< constraints >" in judge_prompt(odd, "r")


def test_overall_and_fine_grained_scores_are_parsed() -> None:
    answer = 'Explanation: ...\nFine Grained Score: [{"a": 10, "b": 5}]\nConstraints Overall Score: [[7.5]]'
    assert parse_overall(answer) == 7.5
    assert parse_fine_grained(answer) == {"a": 10.0, "b": 5.0}
    with pytest.raises(ValueError, match="Constraints Overall Score"):
        parse_overall("Overall: 7")
    record = judge_record("no score here", None, "unparsable")
    assert record["overall"] is None and record["fine_grained"] is None and record["raw"] == "no score here"


def test_if_s_and_if_m_are_mean_scores_by_constraint_count(tmp_path: Path) -> None:
    items = load_trace(write_trace(tmp_path / "t.jsonl", ROWS))
    responses = ["文艺", "an apple", "the sea and the sky"]  # single 0; multi 5 (1 of 2) and 7 (2 of 3)
    records = []
    for item, response in zip(items, responses):
        answer = trace_answer({"messages": judge_messages(item, response)})
        records.append(judge_record(answer, parse_overall(answer), None))
    assert [r["overall"] for r in records] == [10.0, 5.0, 7.0]  # the single constraint has no quoted word
    metrics = score_trace(items, records)
    assert metrics["IF-S"] == pytest.approx(1.0)
    assert metrics["IF-M"] == pytest.approx((0.5 + 0.7) / 2)
    assert metrics["IF"] == pytest.approx((1.0 + 0.5 + 0.7) / 3)
    assert (metrics["IF-S_pass"], metrics["IF-M_pass"]) == (1.0, 0.0)
    assert score_trace(items, records, pass_threshold=7)["IF-M_pass"] == 0.5
    assert (metrics["n_single"], metrics["n_multi"], metrics["n_failed"]) == (1, 2, 0)


def test_unscored_items_raise_or_are_counted(tmp_path: Path) -> None:
    items = load_trace(write_trace(tmp_path / "t.jsonl", ROWS[:2]))
    records = [
        judge_record("[[x]]", None, "no score"),
        judge_record("Constraints Overall Score: [[8]]", 8.0, None),
    ]
    with pytest.raises(ValueError, match="1 of 2 judgement"):
        score_trace(items, records)
    metrics = score_trace(items, records, on_failed="skip")
    assert (metrics["IF-S"], metrics["IF-M"], metrics["n_failed"]) == (None, 0.8, 1)
    with pytest.raises(ValueError, match="pass_threshold"):
        score_trace(items, records, pass_threshold=0)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"constraints_num": 3}, "constraints_num"),
        ({"constraints": ["1. c"]}, "constraints"),  # a list, as the pre-release layout had
        ({"constraints_splits": []}, "constraints_splits"),
        ({"messages": [{"role": "system", "content": "s"}]}, "messages[0].role"),
        ({"messages": [{"role": "bot", "content": "s"}]}, "messages[0]"),
        ({"id": True}, "id"),
    ],
)
def test_bad_rows_name_line_and_field(tmp_path: Path, change: dict, field: str) -> None:
    path = write_trace(tmp_path / "t.jsonl", [ROWS[0], {**ROWS[1], **change}])
    with pytest.raises(BenchmarkFormatError) as info:
        load_trace(path)
    assert str(info.value).startswith(f"{path}:2: field {field!r}")
    skipped = load_trace(path, on_bad_row="skip")
    assert len(skipped) == 1 and len(skipped.skipped) == 1


def test_json_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(ROWS[0]) + '\n{"id": "2",, }\n', encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match=r"t\.jsonl:2: field '<row>': invalid JSON"):
        load_trace(path)
