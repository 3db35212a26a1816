"""SysBench: the released layout, the authors' Chinese judge prompt and verdict parsing, CSR/ISR/SSR."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifpo.eval.judged import BenchmarkFormatError, ask_judge
from ifpo.eval.sysbench import judge_prompt, load_sysbench, parse_verdicts, score_sysbench
from ifpo.judge import JudgeClient, JudgeConfig
from tests.eval_judged.official_judges import sysbench_answer
from tests.eval_judged.release_files import sysbench_row, write_json_array
from tests.fake_chat_server import FakeChatServer, Reply, completion

PIRATE = "你是海盗。Always say 'arr'."


def _file(tmp_path: Path, rows: list) -> Path:
    return write_json_array(tmp_path / "system_benchmark_eval_datas.json", rows, indent=2)


def _dialogue(system_id: int, turns: int = 5) -> dict:
    return sysbench_row(
        system_id,
        PIRATE,
        [
            (f"q{system_id}-{t}", f"ref{t}", [("says 'arr'", "风格约束"), ("says 'ok'", "内容约束")])
            for t in range(turns)
        ],
    )


def test_loads_the_released_layout(tmp_path: Path) -> None:
    item = load_sysbench(_file(tmp_path, [_dialogue(7, turns=2)]))[0]
    assert (item.id, item.system_prompt, item.user_turns, item.references) == (
        7,
        PIRATE,
        ("q7-0", "q7-1"),
        ("ref0", "ref1"),
    )
    assert [(c.id, c.content, c.type) for c in item.criteria[1]] == [
        (1, "says 'arr'", "风格约束"),
        (2, "says 'ok'", "内容约束"),
    ]
    assert item.alignments == ("align", "misalign") and item.rounds_related is True
    assert item.conversation(1, ["mine"]) == [
        {"role": "system", "content": PIRATE},
        {"role": "user", "content": "q7-0"},
        {"role": "assistant", "content": "mine"},
        {"role": "user", "content": "q7-1"},
    ]


def test_missing_turn_criteria_names_line_and_field(tmp_path: Path) -> None:
    row = _dialogue(1, turns=1)
    del row["prompt_infos"]["q1-0"]
    with pytest.raises(BenchmarkFormatError, match=r"\.json:2: field 'prompt_infos\[<user turn 1>\]'"):
        load_sysbench(_file(tmp_path, [row]))


def test_judge_prompt_is_the_authors_layout(tmp_path: Path) -> None:
    item = load_sysbench(_file(tmp_path, [_dialogue(1, turns=3)]))[0]
    prompt = judge_prompt(item, 2, ["a0", "a1"], "arr ok")
    assert prompt.startswith("\n# 背景与目标\n你现在是一个大模型结果评估专家。")
    assert f"<system prompt>\n{PIRATE}\n</system prompt>" in prompt
    assert (
        "<round-2>\n<role:>\nuser\n</role>\n<content>\nq1-1\n</content>\n<role:>assistant</role>\n<content>\na1\n</content>\n</round-2>"
        in prompt
    )
    assert "<round-3>" not in prompt
    assert "## 当前待评估的对话轮次\n<role:>\nuser\n</role>\n<content>\nq1-2\n</content>" in prompt
    assert "<评判细则>\n1. says 'arr' | 风格约束\n2. says 'ok' | 内容约束\n</评判细则>" in prompt
    assert prompt.rstrip().endswith("'''")


def test_verdicts_parse_as_the_authors_eval_does(tmp_path: Path) -> None:
    item = load_sysbench(_file(tmp_path, [_dialogue(1, turns=1)]))[0]
    fenced = '```json\n{\n  "评判理由": "r",\n  "评判结果": {\n    1: "是",\n    2: "否"\n  }\n}\n```'
    assert parse_verdicts(fenced, item.criteria[0]) == ({"1": "是", "2": "否"}, "r")
    assert parse_verdicts('{"评判理由": "r", "评判结果": {"1": "是", "2": "是"}}', item.criteria[0])[0] == {
        "1": "是",
        "2": "是",
    }
    for bad in (
        '```json\n{"评判理由": "r", "评判结果": {1: "是"}}\n```',
        "是的",
        '{"评判结果": {1: "是", 2: "是"}}',
    ):
        with pytest.raises(ValueError):
            parse_verdicts(bad, item.criteria[0])


def _record(*verdicts: str) -> dict:
    return {"verdicts": {str(n): v for n, v in enumerate(verdicts, start=1)}}


def test_metrics_by_hand(tmp_path: Path) -> None:
    items = list(load_sysbench(_file(tmp_path, [_dialogue(1), _dialogue(2)])))
    ok, half, odd = (
        _record("是", "是"),
        _record("是", "否"),
        _record("是", "部分"),
    )  # "部分": not 是, yet not 否
    records = [[ok, odd, half, ok, ok], [half, ok, ok, ok, ok]]
    metrics = score_sysbench(items, records)
    # criteria: 20 in all; 是 everywhere except turn 2 of d1 (部分), turn 3 of d1 and turn 1 of d2 (否)
    assert metrics["CSR"] == pytest.approx(17 / 20)
    assert metrics["CSR_风格约束"] == 1.0 and metrics["CSR_内容约束"] == pytest.approx(7 / 10)
    assert metrics["ISR"] == pytest.approx(8 / 10)  # a turn is usable when no verdict is 否
    assert (
        metrics["ISR_align"] == pytest.approx(4 / 6) and metrics["ISR_misalign"] == 1.0
    )  # turns 1,3,5 align
    assert metrics["SSR"] == pytest.approx((2 + 0) / (2 * 5))  # usable turns in a row from the first, / 5
    assert (metrics["n"], metrics["n_turns"], metrics["n_failed"]) == (2, 10, 0)


def test_dialogue_with_a_failed_turn_is_skipped_whole(tmp_path: Path) -> None:
    items = list(load_sysbench(_file(tmp_path, [_dialogue(1, 1), _dialogue(2, 1)])))
    records = [[_record("是", "是")], [{"verdicts": None, "error": "unparsable"}]]
    with pytest.raises(ValueError, match="1 of 2 judgement"):
        score_sysbench(items, records)
    assert score_sysbench(items, records, on_failed="skip")["n_failed"] == 1


def test_unparsable_verdict_is_asked_again_at_temperature_half(tmp_path: Path) -> None:
    item = load_sysbench(_file(tmp_path, [_dialogue(1, 1)]))[0]
    prompt = judge_prompt(item, 0, [], "arr")

    def responder(index: int, body: dict) -> Reply:
        return Reply(completion("我认为是" if index == 0 else sysbench_answer(body)))

    with FakeChatServer(responder) as server:
        config = JudgeConfig(base_url=server.base_url, model="gpt-4o-2024-05-13", backoff_s=0, cache_dir=None)
        with JudgeClient(config, show_progress=False) as client:
            raw, parsed, problem = ask_judge(
                client,
                [{"role": "user", "content": prompt}],
                lambda text: parse_verdicts(text, item.criteria[0]),
                params={},
                retry_params={"temperature": 0.5},
            )
        assert [b["temperature"] for b in server.requests] == [0.0, 0.5]
    assert parsed == ({"1": "是", "2": "否"}, "逐条核对") and problem is None and raw.startswith("```json")
