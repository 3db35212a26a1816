"""`python -m ifpo.bench attention`: segment-attention kernels head to head on this machine.

The step benchmark's model and pairs, one packed micro-batch (prefix sharing on and off), the
DPO loss's compute: policy forward + backward and the no-grad reference forward, through
`PreferenceModule.compute_logps`. Each kernel runs in its own process, alternating kernels for
several rounds so a shared machine's load falls on both alike; the result is the median over
rounds of each process's median step time. The first step (flex compiles there) is reported
apart. On the CPU flex serves the reference forward only (torch has no CPU flex backward).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KERNELS = ("sdpa", "flex")


def measure_kernel(
    kernel: str, workdir: Path, pairs: int, steps: int, prefix_sharing: bool
) -> dict[str, Any]:
    """Median seconds per compute step (after the first) for one kernel, in this process."""
    import torch

    from ifpo.bench.data import make_records, tokenize_records
    from ifpo.bench.steps import LOSSES, OPTIM, _model_cfg
    from ifpo.data.packed_collate import PackedPreferenceCollator
    from ifpo.models.loading import load_tokenizer
    from ifpo.training.module import PreferenceModule

    cfg = _model_cfg(workdir, kernel)
    examples = tokenize_records(make_records("pair", pairs, seed=1), load_tokenizer(cfg))
    batch = PackedPreferenceCollator(("chosen", "rejected"), prefix_sharing)(examples)
    torch.manual_seed(0)
    module = PreferenceModule(cfg, {"mode": "copy", "name_or_path": None}, LOSSES["dpo"], OPTIM)
    module.configure_model()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        module.head(module.compute_logps(batch), batch).loss.backward()
        module.policy.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return {
        "kernel": kernel,
        "first_s": times[0],
        "step_s": statistics.median(times[1:]),
        "tokens": int(batch.input_ids.shape[1]),
        "threads": torch.get_num_threads(),
    }


def attention_report(opts: argparse.Namespace, run_worker: Callable[..., dict[str, Any]]) -> str:
    from ifpo.bench.data import prepare

    lines = [
        f"segment attention kernels: DPO compute step (policy fwd+bwd, reference fwd), {opts.pairs} pairs "
        f"packed, median of {opts.steps} steps per process, {opts.rounds} alternating rounds, "
        f"{opts.threads or 'default'} threads"
    ]
    with tempfile.TemporaryDirectory(prefix="ifpo-bench-attn-") as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        for sharing in (True, False):
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KERNELS}
            for _ in range(opts.rounds):
                for kernel in KERNELS:
                    args = [
                        "attention-worker",
                        kernel,
                        "--workdir",
                        str(workdir),
                        "--pairs",
                        str(opts.pairs),
                        "--steps",
                        str(opts.steps),
                    ] + ([] if sharing else ["--no-prefix-sharing"])
                    runs[kernel].append(run_worker(args, opts.timeout, opts.threads))
            layout = "packing + prefix sharing" if sharing else "packing only"
            step = {k: statistics.median(r["step_s"] for r in runs[k]) for k in KERNELS}
            first = {k: statistics.median(r["first_s"] for r in runs[k]) for k in KERNELS}
            lines.append(f"{layout} ({runs['sdpa'][0]['tokens']} tokens in the row):")
            for kernel in KERNELS:
                rounds = ", ".join(f"{r['step_s']:.3f}" for r in runs[kernel])
                lines.append(
                    f"  {kernel:<5} {step[kernel]:.3f} s/step (rounds: {rounds}); first step "
                    f"{first[kernel]:.2f} s"
                )
            lines.append(f"  flex / sdpa step time: {step['flex'] / step['sdpa']:.2f}")
    return "\n".join(lines)
