"""The real model through export and generation: a LoRA run exported with `python -m
ifpo.scale.export` (adapters merged) reloads with from_pretrained and gives identical logits;
greedy answers rendered with the model's chat template stop on its EOS ids and are scored by the
IFEval checkers."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ifpo.eval.runner import evaluate
from ifpo.models.generation import GenerationSettings, HFGenerator
from ifpo.models.loading import eos_token_ids, folder_eos_token_ids
from ifpo.training.pipeline import build
from tests.hydra_helpers import compose_config

ROOT = Path(__file__).resolve().parents[2]
IFEVAL = ROOT.parent / "shared" / "data" / "ifeval" / "input_data.jsonl"
# Checkers whose verdict does not depend on the answer's length (answers are capped short here).
LENGTH_FREE = {"punctuation:no_comma", "change_case:english_lowercase", "change_case:english_capital"}


def test_lora_export_reloads_with_identical_logits(tmp_path, smollm2_cfg, record_files):
    cfg = compose_config(
        "train",
        [
            "model=smollm2_135m",
            "loss=dpo",
            "peft=lora",
            "peft.r=8",
            "peft.alpha=16",
            "peft.dropout=0.0",
            "ref.mode=adapter",
            "data=files",
            f"data.train_files=[{record_files['pair']}]",
            "data.batch_size=1",
            "data.max_length=64",
            "data.max_prompt_length=48",
            "data.num_workers=0",
            "trainer.max_steps=1",
            "optim.lr=1e-3",
            "optim.warmup_ratio=0.0",
            "~callbacks",
            "~logger",
            "+trainer.enable_checkpointing=false",
        ],
        output_dir=tmp_path,
    )
    module, datamodule, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    lora_b = [p for n, p in module.policy.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # the adapters learned something
    ckpt = tmp_path / "lora.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "hf"
    proc = subprocess.run(
        [sys.executable, "-m", "ifpo.scale.export", str(ckpt), str(out)],
        check=False,
        cwd=ROOT,
        env={**os.environ, "IFPO_ROOT": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert not any("lora" in name for name in reloaded.state_dict())
    assert reloaded.generation_config.eos_token_id == [2, 0]  # the stop ids travel with the export
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a color."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    policy = module.policy.eval()
    with torch.no_grad():
        exported = reloaded(input_ids=ids).logits
        merged = copy.deepcopy(policy).merge_and_unload()(input_ids=ids).logits
        adapters = policy(input_ids=ids).logits
    assert torch.equal(exported, merged)  # the file round trip is exact
    torch.testing.assert_close(exported, adapters, atol=5e-4, rtol=1e-5)  # merge == adapters (float rounding)
    base_logits = AutoModelForCausalLM.from_pretrained(smollm2_cfg["name_or_path"])(input_ids=ids).logits
    assert not torch.allclose(exported, base_logits, atol=1e-4)  # the trained adapters are in it


def test_greedy_answer_stops_on_an_eos_id(smollm2, smollm2_cfg):
    model, tokenizer = smollm2
    # <|im_end|> (the turn end, the tokenizer's EOS) and <|endoftext|>, for HF and vLLM alike.
    assert eos_token_ids(model, tokenizer) == [2, 0]
    assert folder_eos_token_ids(smollm2_cfg["name_or_path"], tokenizer) == [2, 0]
    assert tokenizer.convert_ids_to_tokens([2, 0]) == ["<|im_end|>", "<|endoftext|>"]
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        settings = GenerationSettings(max_new_tokens=48, show_progress=False)
        [answer] = HFGenerator(model, tokenizer, settings).generate(
            [[{"role": "user", "content": "What is the capital of France? Answer with one word."}]]
        )
    finally:
        handle.remove()
    assert "paris" in answer.lower()
    assert len(calls) < settings.max_new_tokens  # stopped on <|im_end|>, not at the cap


def test_greedy_generation_scored_by_the_ifeval_checkers(tmp_path, smollm2_cfg):
    if not IFEVAL.exists():
        pytest.skip(f"shared IFEval data not found at {IFEVAL}")
    rows = [json.loads(line) for line in IFEVAL.read_text().splitlines() if line.strip()]
    picked = [r for r in rows if set(r["instruction_id_list"]) <= LENGTH_FREE][:3]
    assert len(picked) == 3
    data = tmp_path / "three.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in picked))
    cfg = compose_config(
        "eval",
        [
            "+eval=ifeval",
            "model=smollm2_135m",
            f"eval.data={data}",
            "eval.generation.max_new_tokens=24",
            "eval.generation.show_progress=false",
            "eval.chart=false",
        ],
        output_dir=tmp_path / "run",
    )
    result = evaluate(cfg)
    assert 0.0 <= result.metrics["prompt_strict"] <= 1.0
    examples = [json.loads(line) for line in (tmp_path / "run" / "examples.jsonl").read_text().splitlines()]
    assert len(examples) == 3 and all(e["response"].strip() for e in examples)
    checked = 0
    for example in examples:  # the checkers' verdicts, recomputed from their definitions
        for kind, verdict in zip(example["instruction_id_list"], example["follow_instruction_list_strict"]):
            text = example["response"]
            expected = {
                "punctuation:no_comma": "," not in text,
                "change_case:english_lowercase": text == text.lower(),
                "change_case:english_capital": text == text.upper(),
            }[kind]
            assert verdict == expected, (kind, text)
            checked += 1
    assert checked >= 3
