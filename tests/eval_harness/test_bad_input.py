"""Bad input: unknown ids listed together (or skipped and counted), malformed files located,
missing responses, empty responses scored as failures, and a clear error for a missing benchmark."""

from __future__ import annotations

import json

import pytest

from ifpo.constraints import ConstraintError, ConstraintFormatError
from ifpo.eval.runner import evaluate
from tests.eval_harness.conftest import eval_config, write_jsonl

GOOD = {"key": 1, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}


def _records():
    return [
        GOOD,
        {"key": 2, "prompt": "Two.", "instruction_id_list": ["made:up"], "kwargs": [{}]},
        {
            "key": 3,
            "prompt": "Three.",
            "instruction_id_list": ["punctuation:no_comma", "also:unknown", "made:up"],
            "kwargs": [{}, {}, {}],
        },
        # An IFBench id is unknown to IFEval's checkers.
        {"key": 4, "prompt": "Four.", "instruction_id_list": ["count:word_count_range"], "kwargs": [{}]},
    ]


def test_unknown_ids_are_listed_in_one_error(tmp_path):
    data = write_jsonl(tmp_path / "bench.jsonl", _records())
    with pytest.raises(ConstraintFormatError) as info:
        evaluate(eval_config(tmp_path, ["+eval=ifeval", f"eval.data={data}", "eval.responses=unused.jsonl"]))
    message = str(info.value)
    assert str(data) in message and "3 unknown ifeval instruction id(s)" in message
    assert "'made:up' (lines 2, 3)" in message and "'also:unknown' (line 3)" in message
    assert "'count:word_count_range' (line 4)" in message and "eval.on_unknown=skip" in message


def test_unknown_ids_can_be_skipped_and_counted(tmp_path):
    data = write_jsonl(tmp_path / "bench.jsonl", _records())
    responses = write_jsonl(tmp_path / "responses.jsonl", [{"prompt": "Say hi.", "response": "hi there"}])
    result = evaluate(
        eval_config(
            tmp_path / "run",
            [
                "+eval=ifeval",
                f"eval.data={data}",
                f"eval.responses={responses}",
                "eval.on_unknown=skip",
                "eval.chart=false",
            ],
        )
    )
    assert result.skipped == {"unknown_instruction_id": 3}
    assert result.metrics["num_prompts"] == 1 and result.metrics["prompt_strict"] == 1.0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["skipped"] == {"unknown_instruction_id": 3}


@pytest.mark.parametrize(
    "bad_line, match",
    [
        ('{"key": 2, "prompt": "x", ', r"bench\.jsonl:line 2: invalid JSON"),
        (
            json.dumps(
                {"key": 2, "prompt": "x", "instruction_id_list": ["punctuation:no_comma"], "kwargs": {}}
            ),
            r"bench\.jsonl:line 2 field 'kwargs'",
        ),
        (json.dumps({"key": 2, "instruction_id_list": []}), r"bench\.jsonl:line 2 field 'prompt'"),
        (
            json.dumps(
                {
                    "key": 2,
                    "prompt": "x",
                    "instruction_id_list": ["length_constraints:number_words"],
                    "kwargs": [{"relation": "about", "num_words": 3}],
                }
            ),
            r"bench\.jsonl:line 2 field 'kwargs\[0\]\.relation'",
        ),
    ],
)
def test_malformed_benchmark_file_names_file_line_field(tmp_path, bad_line, match):
    data = tmp_path / "bench.jsonl"
    data.write_text(json.dumps(GOOD) + "\n" + bad_line + "\n", encoding="utf-8")
    # ConstraintFormatError or a bad-parameter ConstraintError
    with pytest.raises(ConstraintError, match=match):
        evaluate(eval_config(tmp_path, ["+eval=ifeval", f"eval.data={data}", "eval.responses=unused.jsonl"]))


def test_malformed_responses_file_and_missing_responses(tmp_path):
    data = write_jsonl(tmp_path / "bench.jsonl", [GOOD, {**GOOD, "key": 2, "prompt": "Other."}])
    bad = tmp_path / "responses.jsonl"
    bad.write_text(
        json.dumps({"prompt": "Say hi.", "response": "ok"}) + "\n" + json.dumps({"prompt": "Other."}) + "\n"
    )
    with pytest.raises(ConstraintFormatError, match=r"responses\.jsonl:line 2 field 'response'"):
        evaluate(eval_config(tmp_path, ["+eval=ifeval", f"eval.data={data}", f"eval.responses={bad}"]))
    partial = write_jsonl(tmp_path / "partial.jsonl", [{"prompt": "Say hi.", "response": "ok"}])
    with pytest.raises(ConstraintFormatError, match="no response for prompt 2"):
        evaluate(eval_config(tmp_path, ["+eval=ifeval", f"eval.data={data}", f"eval.responses={partial}"]))
    result = evaluate(
        eval_config(
            tmp_path,
            [
                "+eval=ifeval",
                f"eval.data={data}",
                f"eval.responses={partial}",
                "eval.on_missing=skip",
                "eval.chart=false",
            ],
        )
    )
    assert result.skipped == {"missing_response": 1} and result.metrics["num_prompts"] == 1


def test_empty_responses_fail_every_instruction(tmp_path):
    # Both would pass with a non-empty response: no commas, no forbidden word.
    records = [
        GOOD,
        {
            "key": 2,
            "prompt": "Avoid cats.",
            "instruction_id_list": ["keywords:forbidden_words"],
            "kwargs": [{"forbidden_words": ["cat"]}],
        },
    ]
    data = write_jsonl(tmp_path / "bench.jsonl", records)
    responses = write_jsonl(
        tmp_path / "r.jsonl",
        [{"prompt": "Say hi.", "response": ""}, {"prompt": "Avoid cats.", "response": "   "}],
    )
    result = evaluate(
        eval_config(tmp_path, ["+eval=ifeval", f"eval.data={data}", f"eval.responses={responses}"])
    )
    assert result.metrics["instruction_strict"] == 0.0 and result.metrics["instruction_loose"] == 0.0


def test_missing_or_unknown_benchmark_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"\+eval=NAME"):
        evaluate(eval_config(tmp_path, []))
    with pytest.raises(ValueError, match="unknown eval.benchmark 'nope'"):
        evaluate(eval_config(tmp_path, ["+eval=ifeval", "eval.benchmark=nope"]))


def test_judged_benchmarks_need_a_data_file(tmp_path):
    with pytest.raises(ValueError, match="eval.data=PATH"):
        evaluate(eval_config(tmp_path, ["+eval=cfbench", "eval.responses=x.jsonl"]))


def test_limit_scores_the_first_items_only(tmp_path):
    records = [GOOD, {**GOOD, "key": 2, "prompt": "Second."}, {**GOOD, "key": 3, "prompt": "Third."}]
    data = write_jsonl(tmp_path / "bench.jsonl", records)
    responses = write_jsonl(
        tmp_path / "r.jsonl",
        [{"prompt": "Say hi.", "response": "a, b"}, {"prompt": "Second.", "response": "ok"}],
    )
    result = evaluate(
        eval_config(
            tmp_path,
            [
                "+eval=ifeval",
                f"eval.data={data}",
                f"eval.responses={responses}",
                "eval.limit=2",
                "eval.chart=false",
            ],
        )
    )
    assert [e["key"] for e in result.examples] == ["1", "2"] and result.metrics["prompt_strict"] == 0.5
    with pytest.raises(ValueError, match="on_unknown must be 'raise' or 'skip'"):
        evaluate(eval_config(tmp_path, ["+eval=ifeval", f"eval.data={data}", "eval.on_unknown=drop"]))
