"""Shared glue: JSON-array line tracking, response alignment, atomic result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifpo.eval.judged import align_responses, iter_json_records, save_records


def test_json_array_elements_get_their_starting_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[\n {"a": 1},\n\n {"b": [\n 2]},  3\n]', encoding="utf-8")
    assert list(iter_json_records(path)) == [(2, {"a": 1}), (4, {"b": [2]}), (5, 3)]
    path.write_text("  [ ]  ", encoding="utf-8")
    assert list(iter_json_records(path)) == []


def test_align_responses_accepts_string_keys_for_int_ids() -> None:
    assert align_responses([1, 2], {"1": "a", 2: "b"}, "X") == ["a", "b"]
    assert align_responses([1, 2], ("a", "b"), "X") == ["a", "b"]


def test_save_records_is_readable_json(tmp_path: Path) -> None:
    target = tmp_path / "out" / "judgements.json"
    save_records(target, [{"id": 1, "satisfied": [True]}])
    save_records(target, [{"id": 2, "satisfied": [False]}])
    assert json.loads(target.read_text(encoding="utf-8")) == [{"id": 2, "satisfied": [False]}]
    assert sorted(p.name for p in target.parent.iterdir()) == ["judgements.json"]


def test_bad_policy_names_are_rejected(tmp_path: Path) -> None:
    from ifpo.eval.judged import load_rows, split_failed

    path = tmp_path / "a.jsonl"
    path.write_text("{}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="on_bad_row"):
        load_rows(path, lambda row, error: row, on_bad_row="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_failed"):
        split_failed([], lambda j: True, "drop", "X")  # type: ignore[arg-type]


def test_ask_judge_reasks_an_unparsable_answer_unless_told_not_to() -> None:
    from ifpo.eval.judged import ask_judge
    from ifpo.judge import JudgeClient, JudgeConfig
    from tests.fake_chat_server import FakeChatServer, Reply, completion

    def parse(text: str) -> int:
        if not text.isdigit():
            raise ValueError("not a number")
        return int(text)

    question = [{"role": "user", "content": "q"}]
    for reask, expected, calls in ((True, ("7", 7, None), 2), (False, ("garbage", None), 1)):
        with FakeChatServer(lambda i, body: Reply(completion("garbage" if i == 0 else "7"))) as server:
            config = JudgeConfig(base_url=server.base_url, model="m", backoff_s=0, cache_dir=None)
            with JudgeClient(config, show_progress=False) as client:
                result = ask_judge(client, question, parse, params={}, reask=reask)
            assert server.request_count == calls
        assert result[: len(expected)] == expected
        assert reask or "unparsable judge answer (not a number)" in result[2]
