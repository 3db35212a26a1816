"""TRACE: IF-S / IF-M with a configurable threshold, loading and judging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifpo.eval.judged import BenchmarkFormatError
from ifpo.eval.trace_bench import DEFAULT_PASS_THRESHOLD, TraceJudgement, judge_trace, load_trace, score_trace
from ifpo.judge import ConstraintJudgement, JudgeClient, JudgeConfig
from ifpo.judge.fake_server import FakeChatServer, keyword_judge

T, F = True, False


def judged(multi: bool, *flags: bool) -> TraceJudgement:
    return TraceJudgement(0, multi, ConstraintJudgement(tuple(f"c{i}" for i in range(len(flags))), flags))


JUDGEMENTS = [
    judged(False, T),  # single, score 1
    judged(False, F),  # single, score 0
    judged(True, T, T),  # multi, score 1
    judged(True, T, F),  # multi, score 0.5
    judged(True, T, T, F, T),  # multi, score 0.75
]


def test_default_threshold_requires_every_constraint() -> None:
    assert DEFAULT_PASS_THRESHOLD == 1.0
    metrics = score_trace(JUDGEMENTS)
    assert metrics["IF-S"] == pytest.approx(1 / 2)
    assert metrics["IF-M"] == pytest.approx(1 / 3)
    assert metrics["IF"] == pytest.approx(2 / 5)
    assert metrics["mean_score"] == pytest.approx((1 + 0 + 1 + 0.5 + 0.75) / 5)
    assert (metrics["n_single"], metrics["n_multi"]) == (2, 3)


def test_lower_threshold_counts_partial_passes() -> None:
    metrics = score_trace(JUDGEMENTS, threshold=0.7)
    assert metrics["IF-M"] == pytest.approx(2 / 3)
    assert metrics["IF-S"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="threshold"):
        score_trace(JUDGEMENTS, threshold=0)


def test_empty_subset_reports_none_and_failures_are_counted() -> None:
    failed = TraceJudgement(1, False, ConstraintJudgement.failure(["c"], "down"))
    metrics = score_trace([judged(True, T, T), failed], on_failed="skip")
    assert (metrics["IF-S"], metrics["IF-M"], metrics["n_failed"]) == (None, 1.0, 1)


def test_load_and_judge(tmp_path: Path) -> None:
    path = tmp_path / "trace_eval.jsonl"
    rows = [
        {"id": "a", "instruction": "Name a fruit.", "constraints": ["mention 'apple'"]},
        {"id": "b", "prompt": "Name two fruits.", "constraints": ["mention 'apple'", "mention 'kiwi'"]},
        {"id": "c", "instruction": "One word.", "constraints": ["say 'yes'"], "type": "multi"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    items = load_trace(path)
    assert [(i.id, i.multi) for i in items] == [("a", False), ("b", True), ("c", True)]
    assert items[1].instruction == "Name two fruits."
    with FakeChatServer(lambda i, body: keyword_judge(body)) as server:
        config = JudgeConfig(base_url=server.base_url, model="j", timeout_s=2, backoff_s=0, cache_dir=None)
        with JudgeClient(config, show_progress=False) as client:
            judgements = judge_trace(items, ["apple", "apple and pear", "yes"], client)
    assert [j.score for j in judgements] == [1.0, 0.5, 1.0]
    metrics = score_trace(judgements)
    assert (metrics["IF-S"], metrics["IF-M"]) == (1.0, 0.5)


@pytest.mark.parametrize(
    "row, field",
    [
        ({"instruction": "x", "constraints": ["c"]}, "id"),
        ({"id": 1, "instruction": "x", "constraints": []}, "constraints"),
        ({"id": 1, "instruction": "x", "constraints": ["ok", 3]}, "constraints[1]"),
        ({"id": 1, "instruction": "x", "constraints": ["c"], "type": "both"}, "type"),
        ({"id": True, "instruction": "x", "constraints": ["c"]}, "id"),
    ],
)
def test_bad_rows_name_line_and_field(tmp_path: Path, row: dict, field: str) -> None:
    path = tmp_path / "t.jsonl"
    good = {"id": 0, "instruction": "fine", "constraints": ["c"]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError) as info:
        load_trace(path)
    assert str(info.value).startswith(f"{path}:2: field {field!r}")
    skipped = load_trace(path, on_bad_row="skip")
    assert len(skipped) == 1 and len(skipped.skipped) == 1


def test_json_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        '[\n  {"id": 1, "instruction": "x", "constraints": ["c"]},\n  {"id": 2,, }\n]\n', encoding="utf-8"
    )
    with pytest.raises(BenchmarkFormatError, match=r"t\.json:3: field '<row>': invalid JSON"):
        load_trace(path)
    path.write_text('{"id": 1}', encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match="expected a JSON array"):
        load_trace(path)
