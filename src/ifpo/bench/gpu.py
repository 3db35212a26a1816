"""`python -m ifpo.bench gpu`: the step comparison on one CUDA GPU at ~1B parameters.

A random-init Llama (hidden 2048, 16 layers, 32k vocabulary: ~1.1B parameters) in bfloat16,
pairs whose (prompt, response) sequences are `--length` tokens (prompt 7/8, responses 1/8),
DPO with a frozen reference. Rows: padded (both switches off), packing, packing + prefix
sharing, and the bare padded floor (policy forward+backward and reference forward with full
logits). Reports workload tokens/s, MFU and peak CUDA memory. MFU counts the useful FLOPs of
the workload (6N per policy token + 2N per reference token over every real prompt+response
token, attention excluded), so layouts that skip work show up as higher MFU.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Any

import torch

GPU_SHAPE = {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 16, "num_key_value_heads": 8,
             "intermediate_size": 5632, "vocab_size": 32000}
TINY_SHAPE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "vocab_size": 512}
ROWS = [("padded", False, False), ("packing", True, False), ("packing+prefix", True, True)]


def _examples(batch: int, length: int, vocab: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(batch):
        response = max(4, length // 8 + rng.randint(-length // 32, length // 32))
        prompt = length - response
        out.append({"prompt_ids": [rng.randrange(3, vocab) for _ in range(prompt)],
                    "chosen_ids": [rng.randrange(3, vocab) for _ in range(response)],
                    "rejected_ids": [rng.randrange(3, vocab) for _ in range(response + rng.randint(-3, 3))],
                    "margin": 1.0})
    return out


def _module(shape: dict[str, int], dtype: str, device: torch.device, folder: str) -> Any:
    import json
    from pathlib import Path

    from ifpo.training.module import PreferenceModule

    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "max_position_embeddings": 8192,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
              "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2, **shape}
    Path(folder, "config.json").write_text(json.dumps(config))
    model_cfg = {"name_or_path": None, "config": folder, "tokenizer": None, "dtype": dtype, "attn_implementation": "sdpa",
                 "gradient_checkpointing": False, "logprob_chunk_size": 1024, "trust_remote_code": False}
    torch.manual_seed(0)
    module = PreferenceModule(model_cfg, {"mode": "copy", "name_or_path": None}, {"name": "dpo", "beta": 0.1},
                              {"lr": 1e-6, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8,
                               "scheduler": "constant_with_warmup", "warmup_ratio": 0.0, "min_lr_ratio": 0.0})
    module.configure_model()
    return module.to(device)


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def gpu_report(opts: argparse.Namespace) -> int:
    import tempfile

    from ifpo.data.collate import PreferenceCollator
    from ifpo.data.packed_collate import PackedPreferenceCollator

    tiny = getattr(opts, "cpu_smoke", False)
    if not tiny and not torch.cuda.is_available():
        print("python -m ifpo.bench gpu needs a CUDA GPU; none is visible here (torch.cuda.is_available() is False).",
              file=sys.stderr)
        return 2
    device = torch.device("cpu" if tiny else "cuda")
    shape, dtype = (TINY_SHAPE, "float32") if tiny else (GPU_SHAPE, "bfloat16")
    examples = _examples(opts.batch, opts.length, shape["vocab_size"])
    tokens = sum(2 * len(e["prompt_ids"]) + len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples)
    with tempfile.TemporaryDirectory() as folder:
        module = _module(shape, dtype, device, folder)
        params = sum(p.numel() for p in module.policy.parameters())
        optimizer = torch.optim.AdamW(module.policy.parameters(), lr=1e-6, foreach=True)
        results = []
        for name, packing, sharing in ROWS + [("floor", None, None)]:
            roles = ("chosen", "rejected")
            collate = PackedPreferenceCollator(roles, sharing) if packing else PreferenceCollator(roles, 2)
            batch = _to(collate(examples), device)

            def step(batch: dict[str, Any] = batch, packing: bool | None = packing) -> None:
                if packing is None:  # the floor: full logits, no trainer, no optimizer
                    ids, mask = batch["input_ids"], batch["attention_mask"]
                    logits = module.policy(input_ids=ids, attention_mask=mask).logits
                    torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten()).backward()
                    with torch.no_grad():
                        module.reference(input_ids=ids, attention_mask=mask).logits.sum()
                    module.policy.zero_grad(set_to_none=True)
                    return
                module.head(module.compute_logps(batch), batch).loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            for _ in range(opts.warmup):
                step()
            _sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for _ in range(opts.steps):
                step()
            _sync(device)
            elapsed = (time.perf_counter() - start) / opts.steps
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
            flops = 8 * params * tokens  # 6N per policy token (fwd+bwd) + 2N per reference token (fwd)
            mfu = flops / elapsed / (opts.peak_tflops * 1e12)
            results.append((name, tokens / elapsed, mfu, peak, elapsed))
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU smoke run"
    print(f"ifpo GPU step benchmark on {name}: {params / 1e9:.2f}B params, {dtype}, {opts.batch} pairs x {opts.length}-token sequences")
    print(f"{'layout':<16} {'tokens/s':>10} {'MFU':>7} {'peak GiB':>9} {'s/step':>8}")
    for row_name, tps, mfu, peak, elapsed in results:
        print(f"{row_name:<16} {tps:>10.0f} {mfu:>7.1%} {peak:>9.1f} {elapsed:>8.3f}")
    return 0
