"""`python -m ifpo.bench gpu`: layouts and segment-attention kernels on one CUDA GPU at ~1B parameters.

A random-init Llama (hidden 2048, 16 layers, 32k vocabulary: ~1.1B parameters) in bfloat16,
pairs whose (prompt, response) sequences are each of `--lengths` tokens (prompt 7/8, responses
1/8; `--batch` pairs at 2,048 tokens, fewer at longer lengths so tokens per step stay equal),
DPO with a frozen reference. Rows: padded (both switches off, transformers' SDPA), packing +
prefix sharing and packing only, each with the segment-batched SDPA kernel (dense per-segment
mask) and flex_attention (block mask), packing only with flash-attn varlen (when flash_attn is
installed), and the bare padded floor (policy forward+backward and reference forward with full
logits). Reports workload tokens/s, MFU and peak CUDA memory; a row that runs out of memory
says so. MFU counts the useful FLOPs of the workload (6N per policy token + 2N per reference
token over every real prompt+response token, attention excluded), so layouts that skip work
show up as higher MFU.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Any

import torch

GPU_SHAPE = {
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "intermediate_size": 5632,
    "vocab_size": 32000,
}
TINY_SHAPE = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 512,
}
#: (row name, packing, prefix sharing, model.segment_attention); None packing = the bare floor.
ROWS = [
    ("padded", False, False, "sdpa"),
    ("prefix+sdpa-dense", True, True, "sdpa"),
    ("prefix+flex", True, True, "flex"),
    ("packing+sdpa-dense", True, False, "sdpa"),
    ("packing+flex", True, False, "flex"),
    ("packing+flash-varlen", True, False, "flash_varlen"),
    ("floor", None, None, "sdpa"),
]
BASE_LENGTH = 2048


def _examples(batch: int, length: int, vocab: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(batch):
        response = max(4, length // 8 + rng.randint(-length // 32, length // 32))
        prompt = length - response
        out.append(
            {
                "prompt_ids": [rng.randrange(3, vocab) for _ in range(prompt)],
                "chosen_ids": [rng.randrange(3, vocab) for _ in range(response)],
                "rejected_ids": [rng.randrange(3, vocab) for _ in range(response + rng.randint(-3, 3))],
                "margin": 1.0,
            }
        )
    return out


def _module(shape: dict[str, int], dtype: str, device: torch.device, folder: str) -> Any:
    import json
    from pathlib import Path

    from ifpo.bench.steps import LOSSES, OPTIM
    from ifpo.training.module import PreferenceModule

    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "max_position_embeddings": 16384,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 2,
        **shape,
    }
    Path(folder, "config.json").write_text(json.dumps(config))
    model_cfg = {
        "name_or_path": None,
        "config": folder,
        "tokenizer": None,
        "dtype": dtype,
        "attn_implementation": "sdpa",
        "gradient_checkpointing": False,
        "logprob_chunk_size": 1024,
        "trust_remote_code": False,
    }
    torch.manual_seed(0)
    module = PreferenceModule(
        model_cfg,
        {"mode": "copy", "name_or_path": None},
        LOSSES["dpo"],
        {**OPTIM, "lr": 1e-6},  # the step benchmark's optimizer, a smaller step for the larger shapes
    )
    module.configure_model()
    return module.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _pairs(batch: int, length: int) -> int:
    """Pairs per step at `length`: `batch` up to 2,048 tokens, scaled down beyond to keep tokens per step."""
    return batch if length <= BASE_LENGTH else max(1, round(batch * BASE_LENGTH / length))


def measure_rows(
    opts: argparse.Namespace,
    module: Any,
    device: torch.device,
    examples: list[dict[str, Any]],
    rows: list[tuple[str, bool | None, bool | None, str]],
) -> list[dict[str, Any]]:
    """Time each row on the same examples; a row that does not fit in memory is reported, not fatal."""
    from ifpo.data.collate import PreferenceCollator
    from ifpo.data.packed_collate import PackedPreferenceCollator
    from ifpo.models import segment_kernels
    from ifpo.models.batch import Batch, PaddedBatch

    tokens = sum(2 * len(e["prompt_ids"]) + len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples)
    params = sum(p.numel() for p in module.policy.parameters())
    optimizer = torch.optim.AdamW(module.policy.parameters(), lr=1e-6, foreach=True)
    results = []
    for name, packing, sharing, kernel in rows:
        row: dict[str, Any] = {"layout": name, "tokens": tokens}
        if kernel == "flash_varlen" and not (device.type == "cuda" and segment_kernels.flash_available()):
            results.append({**row, "error": "flash_attn not installed"})
            continue
        # flash_varlen is what `auto` picks for packing without sharing when flash_attn is importable.
        module.model_cfg["segment_attention"] = "auto" if kernel == "flash_varlen" else kernel
        roles = ("chosen", "rejected")
        collate = PackedPreferenceCollator(roles, bool(sharing)) if packing else PreferenceCollator(roles, 2)
        batch = collate(examples).to(device)

        def step(batch: Batch = batch, packing: bool | None = packing) -> None:
            if packing is None:  # the floor: full logits, no trainer, no optimizer
                assert isinstance(batch, PaddedBatch)  # the floor is collated padded (packing falsy)
                ids, mask = batch.input_ids, batch.attention_mask
                logits = module.policy(input_ids=ids, attention_mask=mask).logits
                torch.nn.functional.cross_entropy(
                    logits[:, :-1].flatten(0, 1).float(), batch.labels[:, 1:].flatten()
                ).backward()
                with torch.no_grad():
                    module.reference(input_ids=ids, attention_mask=mask).logits.sum()
                module.policy.zero_grad(set_to_none=True)
                return
            module.head(module.compute_logps(batch), batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        try:
            for _ in range(opts.warmup):
                step()
            _sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for _ in range(opts.steps):
                step()
            _sync(device)
        except torch.OutOfMemoryError:
            optimizer.zero_grad(set_to_none=True)
            module.policy.zero_grad(set_to_none=True)
            results.append({**row, "error": "out of memory"})
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        elapsed = (time.perf_counter() - start) / opts.steps
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        flops = 8 * params * tokens  # 6N per policy token (fwd+bwd) + 2N per reference token (fwd)
        results.append(
            {
                **row,
                "tokens_per_s": tokens / elapsed,
                "mfu": flops / elapsed / (opts.peak_tflops * 1e12),
                "peak_gib": peak,
                "step_s": elapsed,
            }
        )
    return results


def format_rows(results: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'layout':<22} {'tokens/s':>10} {'MFU':>7} {'peak GiB':>9} {'s/step':>8}"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['layout']:<22} {r['error']}")
        else:
            lines.append(
                f"{r['layout']:<22} {r['tokens_per_s']:>10.0f} {r['mfu']:>7.1%} {r['peak_gib']:>9.1f} "
                f"{r['step_s']:>8.3f}"
            )
    return lines


def gpu_report(opts: argparse.Namespace) -> int:
    import json
    import tempfile

    tiny = getattr(opts, "cpu_smoke", False)
    if not tiny and not torch.cuda.is_available():
        print(
            "python -m ifpo.bench gpu needs a CUDA GPU; none is visible here (torch.cuda.is_available() is "
            "False).",
            file=sys.stderr,
        )
        return 2
    device = torch.device("cpu" if tiny else "cuda")
    shape, dtype = (TINY_SHAPE, "float32") if tiny else (GPU_SHAPE, "bfloat16")
    lengths = [opts.length] if getattr(opts, "length", None) else opts.lengths
    # On the CPU flex serves no-grad calls only; the smoke run keeps to the kernels that train there.
    rows = [r for r in ROWS if not tiny or r[3] == "sdpa"]
    report: dict[str, Any] = {"lengths": {}}
    with tempfile.TemporaryDirectory() as folder:
        module = _module(shape, dtype, device, folder)
        params = sum(p.numel() for p in module.policy.parameters())
        name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU smoke run"
        report.update(device=name, params=params, dtype=dtype)
        for length in lengths:
            pairs = _pairs(opts.batch, length)
            examples = _examples(pairs, length, shape["vocab_size"])
            results = measure_rows(opts, module, device, examples, rows)
            report["lengths"][str(length)] = results
            print(
                f"ifpo GPU step benchmark on {name}: {params / 1e9:.2f}B params, {dtype}, {pairs} pairs x "
                f"{length}-token sequences, {opts.warmup} warm-up + {opts.steps} timed steps",
                flush=True,
            )
            print("\n".join(format_rows(results)), flush=True)
    if getattr(opts, "json", None):
        from pathlib import Path

        Path(opts.json).write_text(json.dumps(report, indent=1))
    return 0
