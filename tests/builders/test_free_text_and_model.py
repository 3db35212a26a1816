"""Free-text judging/reversal through the loopback judge; sampling from the tiny random-init model."""

from __future__ import annotations

import json
from pathlib import Path

from ifpo.builders import run_build
from ifpo.judge import JudgeClient, JudgeConfig
from ifpo.sampling import ResponsesFileSampler, SampleRequest
from tests.fake_chat_server import FakeChatServer, Reply, completion, keyword_judge
from tests.hydra_helpers import compose_config


def _responder(index: int, body: dict) -> Reply:
    if "grader" in body["messages"][0]["content"]:
        return keyword_judge(body)
    return Reply(completion("Do not mention 'banana' at all."))  # a reversal request


def test_free_text_goes_to_judge_once_per_response_and_is_reversed(tmp_path: Path) -> None:
    instructions = tmp_path / "instr.jsonl"
    instructions.write_text(
        json.dumps(
            {
                "key": "q1",
                "messages": [
                    {"role": "system", "content": "Be kind."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Tell me a fact."},
                ],
                "instruction_id_list": ["punctuation:no_comma"],
                "kwargs": [{}],
                "free_text_constraints": ["Mention 'banana'."],
            }
        )
        + "\n"
    )
    responses = tmp_path / "responses.jsonl"
    answers = ["I like banana bread", "I like bread, sometimes", "Bread is good"]
    responses.write_text(json.dumps({"id": "q1", "responses": answers}) + "\n")
    cfg = {
        "name": "rpo",
        "source": "instructions",
        "instructions": str(instructions),
        "num_samples": 3,
        "min_margin": 0,
        "output": str(tmp_path / "rpo.jsonl"),
        "progress": False,
    }
    with FakeChatServer(_responder) as server:
        config = JudgeConfig(base_url=server.base_url, model="fake", cache_dir=None, max_retries=0)
        with JudgeClient(config, show_progress=False) as client:
            stats = run_build(cfg, ResponsesFileSampler(responses), client, seed=0)
        judge_calls = [r for r in server.requests if "grader" in r["messages"][0]["content"]]
        reversal_calls = [r for r in server.requests if r not in judge_calls]
    assert len(judge_calls) == 3  # one per response, holding only the free-text constraint
    for call in judge_calls:
        assert "Mention 'banana'." in call["messages"][1]["content"]
        assert "## Constraints (1)" in call["messages"][1]["content"]
    assert len(reversal_calls) == 1  # cached per constraint text
    assert "Reversed constraint" in reversal_calls[0]["messages"][0]["content"]  # the library's rules prompt
    assert reversal_calls[0]["messages"][1]["content"] == "Mention 'banana'."
    rows = [json.loads(line) for line in (tmp_path / "rpo.jsonl").read_text().splitlines()]
    # Vectors (no_comma, banana): #0 (T,T), #1 (F,F), #2 (T,F). no_comma has no reverse, so a pair
    # whose chosen side fails it is skipped (#1 as chosen, twice); the rest survive.
    got = sorted((r["chosen"][0]["content"], r["rejected"][0]["content"], r["margin"]) for r in rows)
    assert got == sorted(
        [
            (answers[0], answers[1], 2),
            (answers[0], answers[2], 1),
            (answers[2], answers[0], 1),
            (answers[2], answers[1], 1),
        ]
    )
    assert stats.skipped["no_reverse"] == 2
    reversed_row = next(
        r
        for r in rows
        if r["chosen"][0]["content"] == answers[2] and r["rejected"][0]["content"] == answers[0]
    )
    assert reversed_row["prompt"][0]["role"] == "system"
    assert reversed_row["prompt"][0]["content"].startswith("Be kind.")
    assert "Do not mention 'banana' at all." in reversed_row["prompt"][0]["content"]
    assert reversed_row["prompt"][1:] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a fact."},
    ]  # history kept


def test_tiny_model_end_to_end(tmp_path: Path) -> None:
    from ifpo.builders.cli import build
    from ifpo.sampling import build_sampler

    instructions = tmp_path / "instr.jsonl"
    with instructions.open("w") as handle:
        for i, word in enumerate(("ocean", "tea", "kites")):
            handle.write(
                json.dumps(
                    {
                        "key": f"t{i}",
                        "prompt": f"Write about {word}.",
                        "instruction_id_list": ["punctuation:no_comma", "keywords:existence"],
                        "kwargs": [{}, {"keywords": [word]}],
                    }
                )
                + "\n"
            )
    overrides = [
        "builder=dpo",
        f"builder.instructions={instructions}",
        "builder.num_samples=2",
        f"builder.output={tmp_path}/dpo.jsonl",
        "builder.progress=false",
        "sampler=hf",
        "sampler.max_new_tokens=16",
        "sampler.batch_size=4",
    ]
    cfg = compose_config("build", overrides, output_dir=tmp_path)
    stats = build(cfg)
    assert stats.instructions == 3
    assert stats.kept + stats.skipped["tie"] == 3
    # Seeded: the same request and seed give the same samples, another seed other samples.
    sampler = build_sampler(cfg.sampler, model_cfg=cfg.model)
    request = [SampleRequest("t0", [{"role": "user", "content": "Write about tea."}])]
    first = sampler.sample(request, 2, seed=7)
    assert first == sampler.sample(request, 2, seed=7)
    assert len(first) == 1 and len(first[0]) == 2
    assert first != sampler.sample(request, 2, seed=8)
