"""Interrupted evaluations lose nothing: responses and judgements are saved as they finish, and a
rerun in the same folder does only the rest -- same final summary, no item generated or judged twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ifpo.eval import runner
from ifpo.eval.progress import ProgressStore
from ifpo.eval.runner import evaluate
from ifpo.judge import JudgeError
from tests.eval_harness.conftest import eval_config, write_jsonl
from tests.eval_judged.official_judges import cfbench_judge, sysbench_judge
from tests.eval_judged.release_files import cfbench_row, sysbench_row, write_json_array
from tests.fake_chat_server import FakeChatServer, Reply


class Interrupted(KeyboardInterrupt):
    """What Ctrl-C raises, from inside generation."""


class FlakyGenerator:
    """Answers from the prompt; raises after ``fail_after`` conversations (None: never)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after, self.seen = fail_after, []

    def generate(self, conversations, desc="generating"):
        out = []
        for conversation in conversations:
            if self.fail_after is not None and len(self.seen) >= self.fail_after:
                raise Interrupted()
            self.seen.append(conversation)
            out.append(f"answer with 'apple' to {conversation[-1]['content']}")
        return out


def _judge(server) -> list[str]:
    return [
        f"eval.judge.base_url={server.base_url}",
        "eval.judge.cache_dir=null",  # the progress file alone must prevent re-judging
        "eval.judge.backoff_s=0",
        "eval.judge.max_retries=0",
        "eval.judge.timeout_s=5",
        "eval.judge_on_error=raise",
        "eval.generation.batch_size=1",
        "eval.chart=false",
    ]


def _summary(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    return {"metrics": summary["metrics"], "examples": (folder / "examples.jsonl").read_text()}


def _cfbench_file(tmp_path: Path) -> Path:
    rows = [
        cfbench_row(
            n, f"prompt {n}", [("mentions 'apple'", "主需"), (f"mentions 'p{n % 2}'", "次需")], "easy"
        )
        for n in range(5)
    ]
    return write_json_array(tmp_path / "cfbench_data.json", rows, indent=4)


def test_crash_in_generation_then_in_judging_resumes_to_the_same_summary(tmp_path, monkeypatch):
    data = _cfbench_file(tmp_path)
    generators = iter([FlakyGenerator(), FlakyGenerator(fail_after=3), FlakyGenerator(), FlakyGenerator()])
    used = []
    monkeypatch.setattr(runner, "build_generator", lambda cfg: used.append(next(generators)) or used[-1])
    overrides = ["+eval=cfbench", f"eval.data={data}"]

    with FakeChatServer(lambda i, body: cfbench_judge(body)) as server:
        evaluate(eval_config(tmp_path / "straight", [*overrides, *_judge(server)]))  # reference run
        straight_calls = server.request_count
    assert straight_calls == 5

    run = tmp_path / "interrupted"
    with FakeChatServer(lambda i, body: cfbench_judge(body)) as server:
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C during generation, after 3 responses
            evaluate(eval_config(run, [*overrides, *_judge(server)]))
        assert server.request_count == 0
    assert len(ProgressStore(run / "progress" / "cfbench_responses.jsonl")) == 3

    # The judge goes down after two answers: the run stops, the two judgements are kept.
    def flaky(index: int, body: dict) -> Reply:
        return cfbench_judge(body) if index < 2 else Reply("down", status=503)

    with FakeChatServer(flaky) as server, pytest.raises(JudgeError):
        evaluate(eval_config(run, [*overrides, *_judge(server)]))
    assert [c[-1]["content"] for c in used[2].seen] == ["prompt 3", "prompt 4"]  # only what was missing
    assert len(ProgressStore(run / "progress" / "cfbench_judge.jsonl")) == 2

    with FakeChatServer(lambda i, body: cfbench_judge(body)) as server:
        result = evaluate(eval_config(run, [*overrides, *_judge(server)]))
        assert server.request_count == 3  # 2 + 3 = 5: no item judged twice
    assert len(used) == 3  # the last run generated nothing, so it never built a model
    assert result.metrics["n"] == 5
    assert _summary(run) == _summary(tmp_path / "straight")


def test_multi_turn_generation_resumes_after_the_turns_already_saved(tmp_path, monkeypatch):
    rows = [
        sysbench_row(
            n, "Say 'apple'.", [(f"u{n}-{t}", "ref", [("says 'apple'", "风格约束")]) for t in range(3)]
        )
        for n in range(2)
    ]
    data = write_json_array(tmp_path / "system_benchmark_eval_datas.json", rows, indent=2)
    generators = iter([FlakyGenerator(fail_after=3), FlakyGenerator()])
    used = []
    monkeypatch.setattr(runner, "build_generator", lambda cfg: used.append(next(generators)) or used[-1])
    with FakeChatServer(lambda i, body: sysbench_judge(body)) as server:
        overrides = ["+eval=sysbench", f"eval.data={data}", *_judge(server)]
        with pytest.raises(KeyboardInterrupt):  # both first turns and one second turn are saved
            evaluate(eval_config(tmp_path / "run", overrides))
        result = evaluate(eval_config(tmp_path / "run", overrides))
        assert server.request_count == 6
    assert [c[-1]["content"] for c in used[1].seen] == ["u1-1", "u0-2", "u1-2"]
    # Turn 3 of dialogue 0 was generated after its saved turn-2 answer, not a new one.
    assert used[1].seen[1][4] == {"role": "assistant", "content": "answer with 'apple' to u0-1"}
    assert (result.metrics["CSR"], result.metrics["n_turns"]) == (1.0, 6)


def test_rule_benchmark_generation_resumes(tmp_path, monkeypatch):
    records = [
        {"key": n, "prompt": f"Write {n}.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
        for n in range(4)
    ]
    data = write_jsonl(tmp_path / "input_data.jsonl", records)
    generators = iter([FlakyGenerator(), FlakyGenerator(fail_after=2), FlakyGenerator()])
    used = []
    monkeypatch.setattr(runner, "build_generator", lambda cfg: used.append(next(generators)) or used[-1])
    overrides = ["+eval=ifeval", f"eval.data={data}", "eval.generation.batch_size=1", "eval.chart=false"]
    evaluate(eval_config(tmp_path / "straight", overrides))
    with pytest.raises(KeyboardInterrupt):
        evaluate(eval_config(tmp_path / "run", overrides))
    evaluate(eval_config(tmp_path / "run", overrides))
    assert [c[-1]["content"] for c in used[2].seen] == ["Write 2.", "Write 3."]
    assert _summary(tmp_path / "run") == _summary(tmp_path / "straight")


def test_progress_store_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    store = ProgressStore(path)
    store.put("a", {"x": 1})
    store.put(7, "text")
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "b", "val')  # the process died mid-write
    reopened = ProgressStore(path)
    assert reopened.items() == {"a": {"x": 1}, "7": "text"} and "b" not in reopened
    reopened.put("b", [1, 2])
    assert ProgressStore(path).items() == {"a": {"x": 1}, "7": "text", "b": [1, 2]}
    path.write_text('{"key": "a", "value": 1}\nnot json\n{"key": "c", "value": 2}\n')
    with pytest.raises(ValueError, match=r"p\.jsonl:2: not a progress record"):
        ProgressStore(path)


@pytest.mark.parametrize(
    "name, release",
    [("trace", "202409_trace_evaluation.jsonl"), ("sysbench", "system_benchmark_eval_datas.json")],
)
def test_judged_benchmarks_name_their_release_file_when_no_data_is_given(tmp_path, name, release):
    with pytest.raises(ValueError, match=f"set eval.data=PATH to .*{release}"):
        evaluate(eval_config(tmp_path, [f"+eval={name}"]))


def test_a_changed_answer_is_judged_again_in_the_same_folder(tmp_path):
    data = _cfbench_file(tmp_path)
    run = tmp_path / "run"
    answers = [{"key": str(n), "response": f"apple p{n % 2}"} for n in range(5)]
    with FakeChatServer(lambda i, body: cfbench_judge(body)) as server:
        overrides = ["+eval=cfbench", f"eval.data={data}", *_judge(server)]
        first = evaluate(
            eval_config(run, [*overrides, f"eval.responses={write_jsonl(tmp_path / 'a.jsonl', answers)}"])
        )
        answers[4]["response"] = "pear"
        second = evaluate(
            eval_config(run, [*overrides, f"eval.responses={write_jsonl(tmp_path / 'b.jsonl', answers)}"])
        )
        assert server.request_count == 5 + 1  # only the changed answer
    assert (first.metrics["ISR"], second.metrics["ISR"]) == (1.0, 0.8)
