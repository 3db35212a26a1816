"""Sizing: tokens/s of sampling the start model on the CPU, one-by-one vs batched HF generate
(± static cache).

The study's slowest stage is sampling K answers per instruction from SmolLM2-135M-Instruct, so
its size is set from these figures (README "Sizing"). Each mode samples the same prompts with
the project's own sampler (``ifpo.sampling.hf.HFSampler``, what ``sample.py`` runs), and counts
the *useful* new tokens (each answer re-tokenized up to its end), so a batch that keeps decoding
after some rows finished is charged for that waste. Wall and CPU seconds are both reported:
CPU seconds of a single-threaded process (OMP_NUM_THREADS=1) are what it would take on an idle
core; wall seconds show the contention at measurement time.

    OMP_NUM_THREADS=1 python -m experiments.smol_ifeval.measure MODEL_DIR INSTRUCTIONS.jsonl \
        --prompts 4 -n 4 --max-new-tokens 64 --out sampling.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from experiments.mini_if.sample import MODEL_CFG
from ifpo.builders.items import load_instructions, sample_request
from ifpo.sampling.hf import HFSampler, SamplingSettings, load_sampling_model


def _count(tokenizer, answers: list[list[str]]) -> int:  # type: ignore[no-untyped-def]
    return sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for row in answers for a in row)


def measure(
    model_dir: Path,
    instructions: Path,
    prompts: int,
    n: int,
    max_new_tokens: int,
    batch_sizes: list[int],
    static: bool,
    one_by_one: bool = True,
) -> dict:
    model, tokenizer = load_sampling_model(OmegaConf.create(MODEL_CFG), str(model_dir))
    items, _ = load_instructions(instructions, "raise", "You are a helpful assistant.")
    requests = [sample_request(it, it.constraints, "system") for it in items[:prompts]]
    modes: list[tuple[str, int, bool]] = [("one_by_one", 1, False)] if one_by_one else []
    modes += [(f"batched_{b}", b, False) for b in batch_sizes]
    if static:
        modes += [(f"batched_{max(batch_sizes)}_static_cache", max(batch_sizes), True)]
    results = {}
    for name, batch, use_static in modes:
        model.generation_config.cache_implementation = "static" if use_static else None
        sampler = HFSampler(model, tokenizer, SamplingSettings(max_new_tokens, 1.0, 1.0, True, batch))
        wall, cpu = time.perf_counter(), time.process_time()
        if batch == 1:  # one sequence per generate call
            answers = [
                [sampler.sample([r], 1, 1000 * i + j)[0][0] for j in range(n)] for i, r in enumerate(requests)
            ]
        else:
            answers = sampler.sample(requests, n, 0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        tokens = _count(tokenizer, answers)
        results[name] = {
            "sequences": len(requests) * n,
            "new_tokens": tokens,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "tokens_per_wall_s": round(tokens / wall, 1),
            "tokens_per_cpu_s": round(tokens / cpu, 1),
        }
        print(name, json.dumps(results[name]), flush=True)
    return {
        "model": str(model_dir),
        "prompts": len(requests),
        "samples_per_prompt": n,
        "max_new_tokens": max_new_tokens,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "modes": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("instructions", type=Path)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("-n", "--num-samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="4,16", help="sequences per generate call, comma-separated")
    parser.add_argument("--no-static", action="store_true", help="skip the static-cache mode")
    parser.add_argument("--no-one-by-one", action="store_true", help="skip the one-sequence-per-call mode")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(
        args.model_dir,
        args.instructions,
        args.prompts,
        args.num_samples,
        args.max_new_tokens,
        [int(b) for b in args.batch_sizes.split(",")],
        not args.no_static,
        not args.no_one_by_one,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
