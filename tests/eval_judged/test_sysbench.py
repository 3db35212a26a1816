"""SysBench: published layout, CSR/ISR/SSR by hand, and per-turn judging with history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifpo.eval.judged import BenchmarkFormatError
from ifpo.eval.sysbench import SysBenchJudgement, judge_sysbench, load_sysbench, score_sysbench
from ifpo.judge import ConstraintJudgement, JudgeClient, JudgeConfig
from ifpo.judge.fake_server import FakeChatServer, keyword_judge


def turn(*flags: bool) -> ConstraintJudgement:
    return ConstraintJudgement(tuple(f"c{i}" for i in range(len(flags))), tuple(flags))


def conversation(item_id: int, *turns: ConstraintJudgement) -> SysBenchJudgement:
    return SysBenchJudgement(item_id, tuple(turns))


T, F = True, False


def test_metrics_by_hand() -> None:
    judgements = [
        # streak 2 (turn 3 fails); 4 full turns; 6 of 7 criteria
        conversation(1, turn(T, T), turn(T), turn(T, F), turn(T), turn(T)),
        # streak 0 (first turn fails); 4 full turns; 4 of 5 criteria
        conversation(2, turn(F), turn(T), turn(T), turn(T), turn(T)),
        # streak 5; 5 full turns; 5 of 5 criteria
        conversation(3, turn(T), turn(T), turn(T), turn(T), turn(T)),
    ]
    metrics = score_sysbench(judgements)
    assert metrics["CSR"] == pytest.approx(15 / 17)
    assert metrics["ISR"] == pytest.approx(13 / 15)
    assert metrics["SSR"] == pytest.approx((2 / 5 + 0 / 5 + 5 / 5) / 3)
    assert metrics["SSR_turns"] == pytest.approx(7 / 3)
    assert (metrics["n"], metrics["n_turns"], metrics["n_failed"]) == (3, 15, 0)


def test_conversation_with_failed_turn_is_skipped_whole() -> None:
    broken = conversation(9, turn(T), ConstraintJudgement.failure(["c0"], "timeout"))
    good = conversation(1, turn(T), turn(F))
    with pytest.raises(ValueError, match="failed"):
        score_sysbench([good, broken])
    metrics = score_sysbench([good, broken], on_failed="skip")
    assert (metrics["ISR"], metrics["SSR"], metrics["n_failed"]) == (0.5, 0.5, 1)


def _conversation_row(system_id: int, turns: list[tuple[str, str, list[str]]]) -> dict:
    messages = [{"role": "system", "content": "You are a pirate. Always say 'arr'."}]
    infos = {}
    for user, reference, criteria in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reference}]
        infos[user] = {
            "alignment": "align",
            "criteria": {
                str(n + 1): {"criteria_id": n + 1, "criteria_content": text, "criteria_type": "style"}
                for n, text in enumerate(criteria)
            },
        }
    return {
        "system_id": system_id,
        "system_prompt": messages[0]["content"],
        "messages": messages,
        "prompt_infos": infos,
        "rounds_related": True,
    }


def _write(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "system_benchmark_eval_datas.json"
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def test_loads_published_layout(tmp_path: Path) -> None:
    rows = [
        _conversation_row(
            7, [("hi", "arr hi", ["says 'arr'"]), ("bye", "arr bye", ["says 'arr'", "says 'bye'"])]
        )
    ]
    items = load_sysbench(_write(tmp_path, rows))
    item = items[0]
    assert (item.id, item.user_turns, item.references) == (7, ("hi", "bye"), ("arr hi", "arr bye"))
    assert item.criteria == (("says 'arr'",), ("says 'arr'", "says 'bye'"))


def test_missing_turn_criteria_names_line_and_field(tmp_path: Path) -> None:
    row = _conversation_row(1, [("hi", "arr", ["says 'arr'"])])
    del row["prompt_infos"]["hi"]
    path = _write(tmp_path, [row])
    with pytest.raises(BenchmarkFormatError, match=r"\.json:2: field 'prompt_infos\[<user turn 1>\]'"):
        load_sysbench(path)


def test_judges_every_turn_with_model_history(tmp_path: Path) -> None:
    rows = [
        _conversation_row(
            1, [("hi", "ref one", ["says 'arr'"]), ("bye", "ref two", ["says 'arr'", "says 'bye'"])]
        ),
        _conversation_row(2, [("yo", "ref three", ["says 'arr'"]), ("ok", "ref four", ["says 'ok'"])]),
    ]
    items = load_sysbench(_write(tmp_path, rows))
    responses = {1: ["arr matey", "arr bye"], 2: ["hello", "arr ok"]}
    with FakeChatServer(lambda i, body: keyword_judge(body)) as server:
        config = JudgeConfig(base_url=server.base_url, model="j", timeout_s=2, backoff_s=0, cache_dir=None)
        with JudgeClient(config, show_progress=False) as client:
            judgements = judge_sysbench(items, responses, client)
            reference_run = judge_sysbench(items, responses, client, history="reference")
        prompts = [body["messages"][-1]["content"] for body in server.requests]
    assert [[t.satisfied for t in j.turns] for j in judgements] == [[(T,), (T, T)], [(F,), (T,)]]
    assert reference_run == judgements  # the keyword judge looks only at the graded answer
    # Turn 2 of conversation 1 is judged with the model's own turn-1 answer, or the reference one.
    second_turn = [p for p in prompts if "User: hi" in p]
    assert any("Assistant: arr matey" in p for p in second_turn)
    assert any("Assistant: ref one" in p for p in second_turn)
    assert all("You are a pirate" in p for p in prompts)
    metrics = score_sysbench(judgements)
    assert (metrics["CSR"], metrics["ISR"], metrics["SSR"]) == (4 / 5, 3 / 4, (2 / 2 + 0 / 2) / 2)


def test_turn_count_mismatch_is_an_error(tmp_path: Path) -> None:
    items = load_sysbench(_write(tmp_path, [_conversation_row(1, [("hi", "r", ["c"]), ("bye", "r", ["c"])])]))
    with pytest.raises(ValueError, match="expected a list of 2 turn responses"):
        judge_sysbench(items, [["only one"]], client=None)  # type: ignore[arg-type]
