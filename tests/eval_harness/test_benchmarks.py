"""Each benchmark adapter through `evaluate`: Multi-IF turn conditioning and per-language scores,
synthetic held-out per-kind accuracy, judge-scored SysBench/CFBench/TRACE via a loopback judge."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from ifpo.constraints import Constraint
from ifpo.data.synthetic import generate_tasks, write_response
from ifpo.eval import runner
from ifpo.eval.multi_if import load_multi_if_csv, score_multi_if
from ifpo.eval.runner import evaluate
from ifpo.eval.synthetic_heldout import heldout_examples
from tests.eval_harness.conftest import eval_config, write_jsonl
from tests.eval_judged.official_judges import cfbench_judge, sysbench_judge, trace_judge
from tests.eval_judged.release_files import (
    CFBENCH_EMPTY_PROMPT_ROW,
    cfbench_row,
    sysbench_row,
    trace_row,
    write_json_array,
    write_trace,
)
from tests.fake_chat_server import FakeChatServer


class ScriptedGenerator:
    """Answers with ``answer(conversation)`` and records every conversation it was given."""

    def __init__(self, answer):
        self.answer, self.seen = answer, []

    def generate(self, conversations, desc="generating"):
        self.seen.extend(conversations)
        return [self.answer(c) for c in conversations]


@pytest.fixture
def use_generator(monkeypatch):
    def install(generator):
        monkeypatch.setattr(runner, "build_generator", lambda cfg: generator)
        return generator

    return install


# ------------------------------------------------------------------------------ Multi-IF
COLUMNS = ["key", "language"] + [
    f"turn_{k}_{p}" for k in (1, 2, 3) for p in ("prompt", "instruction_id_list", "kwargs")
]


def _multi_if_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
    return path


def _turn(k, prompt, ids, kwargs):
    return {
        f"turn_{k}_prompt": prompt,
        f"turn_{k}_instruction_id_list": json.dumps(ids),
        f"turn_{k}_kwargs": json.dumps([json.dumps(kw) for kw in kwargs]),
    }


MULTI_IF_ROWS = [
    {
        "key": "c1",
        "language": "English",
        **_turn(1, "Write about rivers.", ["punctuation:no_comma"], [{}]),
        **_turn(2, "Now lowercase.", ["punctuation:no_comma", "change_case:english_lowercase"], [{}, {}]),
    },
    {"key": "c2", "language": "French", **_turn(1, "Écris.", ["punctuation:no_comma"], [{}])},
]


LONG = "the rivers flow quietly to the sea and the fish swim happily in the water"


def test_multi_if_turns_see_own_answers_and_score_per_language(tmp_path, use_generator):
    data = _multi_if_csv(tmp_path / "multi_if.csv", MULTI_IF_ROWS)

    def answer(conversation):  # turn 1 of c1 breaks no_comma; its turn 2 follows both
        turn = sum(m["role"] == "user" for m in conversation)
        first = conversation[0]["content"]
        return {
            ("Write about rivers.", 1): "Rivers, flow.",
            ("Write about rivers.", 2): LONG,
            ("Écris.", 1): "bonjour",
        }[(first, turn)]

    generator = use_generator(ScriptedGenerator(answer))
    result = evaluate(eval_config(tmp_path / "run", ["+eval=multi_if", f"eval.data={data}"]))
    second_turn = [c for c in generator.seen if len(c) == 3]
    assert second_turn == [
        [
            {"role": "user", "content": "Write about rivers."},
            {"role": "assistant", "content": "Rivers, flow."},
            {"role": "user", "content": "Now lowercase."},
        ]
    ]
    expected = score_multi_if(load_multi_if_csv(data), {"c1": ["Rivers, flow.", LONG], "c2": ["bonjour"]})
    assert result.metrics["turn_1"] == expected.turn_scores()[1] == 0.5
    assert result.metrics["turn_2"] == expected.turn_scores()[2] == 1.0
    assert result.groups["language_English"] == {"turn_1": 0.0, "turn_2": 1.0}
    assert result.groups["language_French"] == {"turn_1": 1.0}
    assert result.per_kind["punctuation:no_comma"] == {"count": 3, "strict": 2 / 3, "loose": 2 / 3}
    # Rescoring the saved generations: same numbers, no generation.
    use_generator(None)
    again = evaluate(
        eval_config(
            tmp_path / "again",
            ["+eval=multi_if", f"eval.data={data}", f"eval.responses={tmp_path / 'run' / 'examples.jsonl'}"],
        )
    )
    assert again.metrics == result.metrics and again.groups == result.groups


def test_multi_if_unknown_ids_listed_or_skipped(tmp_path):
    rows = MULTI_IF_ROWS + [{"key": "c3", "language": "German", **_turn(1, "x", ["nope:kind"], [{}])}]
    data = _multi_if_csv(tmp_path / "multi_if.csv", rows)
    with pytest.raises(
        ValueError, match=r"multi_if\.csv: 1 unknown Multi-IF instruction id\(s\): 'nope:kind' \(line 4\)"
    ):
        evaluate(eval_config(tmp_path, ["+eval=multi_if", f"eval.data={data}"]))
    responses = write_jsonl(
        tmp_path / "r.jsonl", [{"key": "c1", "responses": ["a", "b"]}, {"key": "c2", "responses": ["c"]}]
    )
    result = evaluate(
        eval_config(
            tmp_path / "run",
            [
                "+eval=multi_if",
                f"eval.data={data}",
                "eval.on_unknown=skip",
                f"eval.responses={responses}",
                "eval.chart=false",
            ],
        )
    )
    assert result.skipped == {"unknown_instruction_id": 1} and result.metrics["num_conversations"] == 2


def test_multi_if_responses_file_errors_are_located(tmp_path):
    data = _multi_if_csv(tmp_path / "multi_if.csv", MULTI_IF_ROWS)
    bad = tmp_path / "r.jsonl"
    bad.write_text(
        json.dumps({"key": "c1", "responses": ["a", "b"]})
        + "\n"
        + json.dumps({"key": "c2", "responses": "c"})
        + "\n"
    )
    with pytest.raises(ValueError, match=r"r\.jsonl:line 2 field 'responses'"):
        evaluate(eval_config(tmp_path, ["+eval=multi_if", f"eval.data={data}", f"eval.responses={bad}"]))


# ----------------------------------------------------------------------- synthetic held-out
def test_synthetic_per_kind_accuracy_matches_construction(tmp_path):
    """Responses written to satisfy a known subset of each task's constraints, scored per kind.

    Expected values come from the constraint checkers applied directly to each task's own
    specs; on kinds the writer controls exactly, they also equal the construction vectors,
    which shows responses reach the right task (a key mix-up would break it).
    """
    n, seed = 12, 3
    tasks = generate_tasks(n, "heldout", seed)
    rng = random.Random(0)
    vectors = {t.uid: [rng.random() < 0.5 for _ in t.specs] for t in tasks}
    texts = {t.uid: write_response(t.topic, t.specs, vectors[t.uid], rng) for t in tasks}
    path = write_jsonl(tmp_path / "r.jsonl", [{"key": k, "response": v} for k, v in texts.items()])
    result = evaluate(
        eval_config(
            tmp_path / "run",
            ["+eval=synthetic", f"eval.num_examples={n}", f"eval.seed={seed}", f"eval.responses={path}"],
        )
    )
    checked: dict[str, list[bool]] = {}
    constructed: dict[str, list[bool]] = {}
    for t in tasks:
        for spec, ok in zip(t.specs, vectors[t.uid]):
            checked.setdefault(spec.kind, []).append(
                bool(Constraint(spec.kind, spec.kwargs).check(texts[t.uid]))
            )
            constructed.setdefault(spec.kind, []).append(ok)
    assert {k: (r["count"], r["strict"]) for k, r in result.per_kind.items()} == {
        k: (len(v), sum(v) / len(v)) for k, v in checked.items()
    }
    exact = ("punctuation:no_comma", "keywords:existence", "keywords:forbidden_words", "startend:end_checker")
    for kind in exact:
        assert result.per_kind[kind]["strict"] == sum(constructed[kind]) / len(constructed[kind]), kind
    assert len(result.examples) == n and [e["key"] for e in result.examples] == [t.uid for t in tasks]
    assert (tmp_path / "run" / "accuracy_by_kind.png").stat().st_size > 0


def test_synthetic_heldout_is_deterministic_and_disjoint_from_training():
    a, b = heldout_examples(5, seed=1), heldout_examples(5, seed=1)
    assert [e.messages for e in a] == [e.messages for e in b]
    train_prompts = {t.task for t in generate_tasks(200, "train", 1)}
    assert not {e.messages[-1]["content"] for e in heldout_examples(50, seed=1)} & train_prompts
    with pytest.raises(ValueError, match="num_examples"):
        heldout_examples(0)


# ---------------------------------------------------------------------------- judged
def _judge_overrides(server):
    return [
        f"eval.judge.base_url={server.base_url}",
        "eval.judge.cache_dir=null",
        "eval.judge.backoff_s=0",
        "eval.judge.timeout_s=5",
    ]


def test_trace_and_cfbench_through_the_judge(tmp_path, use_generator):
    trace = write_trace(
        tmp_path / "202409_trace_evaluation.jsonl",
        [
            trace_row(0, "Name a fruit.", ["mention 'apple'"]),
            trace_row(1, "Name two fruits.", ["mention 'apple'", "mention 'kiwi'"]),
        ],
    )
    cf = write_json_array(
        tmp_path / "cfbench_data.json",
        [
            cfbench_row(1, "Name a fruit.", [("mention 'apple'", "主需")]),
            cfbench_row(
                2, "Name two fruits.", [("mention 'apple'", "主需"), ("mention 'kiwi'", "次需")], "hard"
            ),
            CFBENCH_EMPTY_PROMPT_ROW,
        ],
        indent=4,
    )
    generator = use_generator(ScriptedGenerator(lambda c: "an apple"))
    judges = {"You are a helpful assistant.": trace_judge}
    with FakeChatServer(
        lambda i, body: judges.get(body["messages"][0]["content"], cfbench_judge)(body)
    ) as server:
        result = evaluate(
            eval_config(tmp_path / "trace", ["+eval=trace", f"eval.data={trace}", *_judge_overrides(server)])
        )
        # overall scores 10 (single) and 5 (1 of 2): IF-S 1.0, IF-M 0.5
        assert (result.metrics["IF-S"], result.metrics["IF-M"], result.metrics["IF"]) == (1.0, 0.5, 0.75)
        cf_result = evaluate(
            eval_config(tmp_path / "cf", ["+eval=cfbench", f"eval.data={cf}", *_judge_overrides(server)])
        )
        # CSR per item 1, 0.5, 0 (the empty-prompt item's criterion asks for 'couplet')
        assert (cf_result.metrics["CSR"], cf_result.metrics["ISR"], cf_result.metrics["PSR"]) == (
            0.5,
            0.33,
            0.33,
        )
        assert server.request_count == 5
        trace_bodies, cf_bodies = server.requests[:2], server.requests[2:]
    assert all((b["model"], b["temperature"], b["top_p"]) == ("gpt-4o", 0.0, 0.8) for b in trace_bodies)
    assert all((b["model"], b["temperature"]) == ("gpt-4o", 0.01) and "top_p" not in b for b in cf_bodies)
    # TRACE keeps the file's system message; CFBench sends the prompt alone (the empty one too).
    assert generator.seen[0] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Name a fruit.\n1. mention 'apple'\n"},
    ]
    assert [c for c in generator.seen[2:]] == [
        [{"role": "user", "content": "Name a fruit."}],
        [{"role": "user", "content": "Name two fruits."}],
        [{"role": "user", "content": ""}],
    ]
    saved = [json.loads(line) for line in (tmp_path / "trace" / "examples.jsonl").read_text().splitlines()]
    assert saved[1]["response"] == "an apple" and saved[1]["judgement"]["overall"] == 5.0
    assert "Constraints Overall Score: [[5]]" in saved[1]["judgement"]["raw"]
    assert (tmp_path / "trace" / "accuracy_by_kind.png").exists()


def test_sysbench_generates_turns_with_own_history(tmp_path, use_generator):
    row = sysbench_row(
        7,
        "Always say arr.",
        [
            ("hi", "arr hi", [("says 'arr'", "风格约束")]),
            ("bye", "arr bye", [("says 'arr'", "风格约束"), ("says 'bye'", "内容约束")]),
        ],
    )
    data = write_json_array(tmp_path / "system_benchmark_eval_datas.json", [row], indent=2)
    generator = use_generator(ScriptedGenerator(lambda c: f"arr {c[-1]['content']}"))
    with FakeChatServer(lambda i, body: sysbench_judge(body)) as server:
        result = evaluate(
            eval_config(tmp_path / "run", ["+eval=sysbench", f"eval.data={data}", *_judge_overrides(server)])
        )
        assert all(b["model"] == "gpt-4o-2024-05-13" and b["temperature"] == 0.0 for b in server.requests)
    assert generator.seen[1] == [
        {"role": "system", "content": "Always say arr."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "arr hi"},
        {"role": "user", "content": "bye"},
    ]
    assert (result.metrics["CSR"], result.metrics["ISR"], result.metrics["SSR"]) == (1.0, 1.0, 2 / 5)


def test_sysbench_reference_history_is_used_to_generate_and_to_judge(tmp_path, use_generator):
    row = sysbench_row(
        3,
        "Be brief.",
        [("one", "REF-ONE", [("says 'x'", "风格约束")]), ("two", "REF-TWO", [("says 'x'", "风格约束")])],
    )
    data = write_json_array(tmp_path / "system_benchmark_eval_datas.json", [row], indent=2)
    generator = use_generator(ScriptedGenerator(lambda c: f"mine {len(c)}"))
    with FakeChatServer(lambda i, body: sysbench_judge(body)) as server:
        evaluate(
            eval_config(
                tmp_path / "run",
                ["+eval=sysbench", f"eval.data={data}", "eval.history=reference", *_judge_overrides(server)],
            )
        )
        second_turn_prompt = [
            b["messages"][0]["content"] for b in server.requests if "<round-1>" in b["messages"][0]["content"]
        ]
    assert generator.seen[1][2] == {
        "role": "assistant",
        "content": "REF-ONE",
    }  # generated on the reference history
    assert len(second_turn_prompt) == 1 and "<content>\nREF-ONE\n</content>" in second_turn_prompt[0]
    assert "mine 2" not in second_turn_prompt[0].split("## 当前待评估的对话轮次")[0]


# ------------------------------------------------------------------------- hub defaults
def test_hub_datasets_are_the_default_source(tmp_path, monkeypatch):
    """No eval.data: IFEval and Multi-IF come from datasets.load_dataset(hub_name, split) (stubbed
    offline)."""
    import datasets

    calls = []
    hub = {
        "google/IFEval": [
            {
                "key": 1000,
                "prompt": "Say hi.",
                "instruction_id_list": ["punctuation:no_comma"],
                "kwargs": [{"num_words": None}],
            }
        ],
        "facebook/Multi-IF": MULTI_IF_ROWS,
    }

    def fake_load_dataset(name, split):
        calls.append((name, split))
        rows = hub[name]
        return datasets.Dataset.from_list(rows) if name == "facebook/Multi-IF" else rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    responses = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "Say hi.", "response": "hi"}])
    result = evaluate(
        eval_config(tmp_path / "a", ["+eval=ifeval", f"eval.responses={responses}", "eval.chart=false"])
    )
    assert result.examples[0]["key"] == "1000" and result.metrics["prompt_strict"] == 1.0
    turns = write_jsonl(
        tmp_path / "t.jsonl",
        [{"key": "c1", "responses": ["a b", "a b"]}, {"key": "c2", "responses": ["x, y"]}],
    )
    result = evaluate(
        eval_config(tmp_path / "b", ["+eval=multi_if", f"eval.responses={turns}", "eval.chart=false"])
    )
    assert result.metrics["num_conversations"] == 2 and result.groups["language_French"] == {"turn_1": 0.0}
    assert calls == [("google/IFEval", "train"), ("facebook/Multi-IF", "train")]
