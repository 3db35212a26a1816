"""Official IFEval prompts with constructed responses, scored through eval.py's responses path,
equal the rule scorer and IFEval's reference checkers (if_verifiable), example by example."""

from __future__ import annotations

import json

import pytest
from if_verifiable.common import evaluate_instructions
from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

from ifpo.constraints import load_ifeval_jsonl
from ifpo.eval.rule_scoring import load_responses_jsonl, score_ifeval
from ifpo.eval.runner import evaluate
from tests.eval_harness.conftest import GPT4, eval_config, write_jsonl

# Prompts whose reference checker draws a random letter (out-of-domain kwargs): no fixed answer.
RANDOM_IN_REFERENCE = {"1122", "1129"}


def _construct(i: int, gpt4: str) -> str:
    """A mix that follows and breaks instructions: real answers, case flips, commas, empty, truncation."""
    return [
        gpt4,
        gpt4.upper(),
        gpt4.lower(),
        "",
        gpt4.replace(".", ",", 3) + " P.S. done",
        " ".join(gpt4.split()[:12]),
    ][i % 6]


@pytest.fixture(scope="module")
def scored(ifeval_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parity")
    gpt4 = load_responses_jsonl(ifeval_dir / GPT4)
    instructions, _ = load_ifeval_jsonl(ifeval_dir / "input_data.jsonl")
    constructed = {ins.prompt: _construct(i, gpt4[ins.prompt]) for i, ins in enumerate(instructions)}
    responses = write_jsonl(
        tmp / "responses.jsonl", [{"prompt": p, "response": r} for p, r in constructed.items()]
    )
    cfg = eval_config(
        tmp / "run",
        [
            "+eval=ifeval",
            f"eval.data={ifeval_dir / 'input_data.jsonl'}",
            f"eval.responses={responses}",
            "eval.chart=false",
        ],
    )
    result = evaluate(cfg)
    lines = (tmp / "run" / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    return instructions, constructed, result, [json.loads(line) for line in lines]


def test_cli_path_equals_rule_scorer_per_example(scored):
    instructions, constructed, result, examples = scored
    direct = score_ifeval(instructions, constructed)
    assert len(examples) == len(instructions) == 541
    by_prompt = {e["prompt"]: e for e in examples}
    for s, lo in zip(direct.strict, direct.loose):
        example = by_prompt[s.prompt]
        assert example["response"] == s.response
        assert example["follow_instruction_list_strict"] == s.follow_instruction_list
        assert example["follow_instruction_list_loose"] == lo.follow_instruction_list
    assert {k: result.metrics[k] for k in direct.summary()} == direct.summary()
    table = direct.per_instruction()
    assert result.per_kind == {
        k: {"count": r.count, "strict": r.strict, "loose": r.loose} for k, r in table.items()
    }
    # The construction really mixes outcomes: every kind both followed and broken somewhere.
    outcomes: dict[str, set[bool]] = {}
    for e in examples:
        for kind, ok in zip(e["instruction_id_list"], e["follow_instruction_list_strict"]):
            outcomes.setdefault(kind, set()).add(ok)
    assert sum(v == {True, False} for v in outcomes.values()) >= 20


def test_cli_path_equals_reference_checkers_per_example(scored, ifeval_records):
    _, constructed, _, examples = scored
    by_prompt = {e["prompt"]: e for e in examples}
    compared = 0
    for record in ifeval_records:
        if str(record["key"]) in RANDOM_IN_REFERENCE:
            continue
        response = constructed[record["prompt"]]
        example = by_prompt[record["prompt"]]
        if not response.strip():  # the reference returns no per-instruction results; ours fail every one
            assert not any(
                example["follow_instruction_list_strict"] + example["follow_instruction_list_loose"]
            )
            continue
        reference, _ = evaluate_instructions(
            response, record["instruction_id_list"], record["kwargs"], record["prompt"], INSTRUCTION_DICT
        )
        assert example["follow_instruction_list_strict"] == [r.strict_pass for r in reference], record["key"]
        assert example["follow_instruction_list_loose"] == [r.loose_pass for r in reference], record["key"]
        compared += 1
    assert compared > 400
