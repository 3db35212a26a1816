"""CFBench: loading the published layout, PSR rule, metrics, and judging via a loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifpo.eval.cfbench import CFBenchJudgement, item_psr, judge_cfbench, load_cfbench, score_cfbench
from ifpo.eval.judged import BenchmarkFormatError
from ifpo.judge import ConstraintJudgement, JudgeClient, JudgeConfig
from ifpo.judge.fake_server import FakeChatServer, keyword_judge

P, S = "primary", "secondary"


def judged(
    priorities: list[str], flags: list[bool], split: str | None = None, item_id: int = 0
) -> CFBenchJudgement:
    names = tuple(f"c{i}" for i in range(len(flags)))
    return CFBenchJudgement(item_id, tuple(priorities), ConstraintJudgement(names, tuple(flags)), split)


@pytest.mark.parametrize(
    "priorities, flags, expected",
    [
        ([P, P], [True, True], 1),  # all primary, all pass
        ([P, S], [False, True], 0),  # a primary fails
        ([P, S, S], [True, True, False], 0),  # 0.5 + 0.5 * 1/2 = 0.75
        ([P, S, S, S, S, S], [True, True, True, True, False, False], 0),  # 0.5 + 0.5 * 3/5 = 0.8, not > 0.8
        ([P, S, S, S, S], [True, True, True, True, False], 1),  # 0.5 + 0.5 * 3/4 = 0.875
        ([S] * 5, [True] * 4 + [False], 0),  # all secondary, CSR 0.8 is not > 0.8
        ([S] * 6, [True] * 5 + [False], 1),  # all secondary, CSR 5/6
    ],
)
def test_item_psr_rule(priorities: list[str], flags: list[bool], expected: int) -> None:
    assert item_psr(flags, priorities) == expected


def test_scores_are_item_means_overall_and_per_split() -> None:
    judgements = [
        judged([P, S, S], [True, True, False], "easy"),  # CSR 2/3, PSR 0
        judged([P, P], [True, True], "easy"),  # CSR 1, ISR 1, PSR 1
        judged([S] * 5, [True] * 4 + [False], "easy"),  # CSR 4/5, PSR 0
        judged([P] + [S] * 5, [True] * 4 + [False] * 2, "hard"),  # CSR 4/6, PSR 0
        judged([P, S], [False, True], "hard"),  # CSR 1/2, PSR 0
        judged([S] * 6, [True] * 5 + [False], "hard"),  # CSR 5/6, PSR 1
        judged([P] + [S] * 4, [True] * 4 + [False], "hard"),  # CSR 4/5, PSR 1
    ]
    metrics = score_cfbench(judgements)
    assert metrics["CSR"] == pytest.approx((2 / 3 + 1 + 4 / 5 + 4 / 6 + 1 / 2 + 5 / 6 + 4 / 5) / 7)
    assert metrics["ISR"] == pytest.approx(1 / 7)
    assert metrics["PSR"] == pytest.approx(3 / 7)
    assert metrics["CSR_easy"] == pytest.approx((2 / 3 + 1 + 4 / 5) / 3)
    assert metrics["PSR_easy"] == pytest.approx(1 / 3)
    assert metrics["PSR_hard"] == pytest.approx(2 / 4)
    assert metrics["ISR_hard"] == 0.0
    assert (metrics["n"], metrics["n_failed"]) == (7, 0)


def test_failed_judgements_raise_or_are_counted() -> None:
    failed = CFBenchJudgement(9, (P,), ConstraintJudgement.failure(["c0"], "judge down"))
    good = judged([P], [True])
    with pytest.raises(ValueError, match="1 of 2 judgement"):
        score_cfbench([good, failed])
    metrics = score_cfbench([good, failed], on_failed="skip")
    assert (metrics["PSR"], metrics["n"], metrics["n_failed"]) == (1.0, 1, 1)


def _row(idx: int, prompt: str, criteria: list[list[str]], split: str = "easy") -> dict:
    return {"idx": idx, "prompt": prompt, "isanswer": "否", "gold": "", "split": split, "criteria": criteria}


def test_loads_published_layout(tmp_path: Path) -> None:
    path = tmp_path / "cfbench_data.json"
    rows = [
        _row(
            0,
            "写一首诗",
            [["是一首诗", "主需", "风格约束", "形式文体约束"], ["不超过四行", "次需", "数值约束", "x"]],
        ),
        {**_row(1, "Say hi", [["greets", "primary"]], "hard"), "gold": "hi"},
    ]
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=4), encoding="utf-8")
    items = load_cfbench(path)
    assert [i.id for i in items] == [0, 1]
    assert items[0].criteria == ("是一首诗", "不超过四行")
    assert items[0].priorities == (P, S)
    assert (items[1].gold, items[1].split) == ("hi", "hard")


def test_bad_row_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "cf.json"
    good = _row(0, "ok", [["c", "主需"]])
    bad = _row(1, "ok", [["c", "urgent"]])
    path.write_text(json.dumps([good, bad], indent=2), encoding="utf-8")
    element_starts = [n + 1 for n, line in enumerate(path.read_text().splitlines()) if line == "  {"]
    bad_line = element_starts[1]  # the second element's opening brace
    with pytest.raises(BenchmarkFormatError) as info:
        load_cfbench(path)
    assert str(info.value).startswith(f"{path}:{bad_line}: field 'criteria[0][1]'")
    assert "urgent" in str(info.value)
    loaded = load_cfbench(path, on_bad_row="skip")
    assert [i.id for i in loaded] == [0] and len(loaded.skipped) == 1


def test_missing_field_in_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "cf.jsonl"
    lines = [
        json.dumps(_row(0, "ok", [["c", "主需"]])),
        "",
        json.dumps({"idx": 1, "criteria": [["c", "主需"]]}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match=r"cf.jsonl:3: field 'prompt': missing"):
        load_cfbench(path)


def test_judging_through_loopback_judge(tmp_path: Path) -> None:
    path = tmp_path / "cf.json"
    rows = [
        _row(0, "Describe fruit", [["mentions 'apple'", "主需"], ["mentions 'pear'", "次需"]]),
        _row(1, "Describe a car", [["mentions 'wheel'", "主需"], ["mentions 'red'", "次需"]], "hard"),
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    items = load_cfbench(path)
    responses = {0: "An apple and a pear.", 1: "It has a red door."}
    with FakeChatServer(lambda i, body: keyword_judge(body)) as server:
        config = JudgeConfig(base_url=server.base_url, model="j", timeout_s=2, backoff_s=0, cache_dir=None)
        with JudgeClient(config, show_progress=False) as client:
            judgements = judge_cfbench(items, responses, client)
        assert server.request_count == 2  # one call per response, all criteria at once
    assert [j.judgement.satisfied for j in judgements] == [(True, True), (False, True)]
    metrics = score_cfbench(judgements)
    assert (metrics["CSR"], metrics["ISR"], metrics["PSR"]) == (0.75, 0.5, 0.5)


def test_responses_must_cover_every_item(tmp_path: Path) -> None:
    path = tmp_path / "cf.json"
    path.write_text(
        json.dumps([_row(0, "p", [["c", "主需"]]), _row(1, "p", [["c", "主需"]])]), encoding="utf-8"
    )
    items = load_cfbench(path)
    with pytest.raises(KeyError, match="id 1"):
        judge_cfbench(items, {0: "r"}, client=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 responses for 2 items"):
        judge_cfbench(items, ["r"], client=None)  # type: ignore[arg-type]
