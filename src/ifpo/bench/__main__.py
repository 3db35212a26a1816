"""`python -m ifpo.bench [steps|logprobs|gpu]`: performance figures as one printed table.

    steps     (default) ifpo DPO/RPO/IOPO steps with each switch on and off vs TRL's
              DPOTrainer and a bare padded floor, on this machine, in one run
    logprobs  peak extra memory of the chunked log-prob path vs a naive float32 log_softmax
    attention segment-attention kernels (sdpa vs flex) head to head, alternating processes
    gpu       layouts and segment-attention kernels (SDPA-dense, flex, flash-attn varlen) at ~1B
              parameters and 2,048 / 8,192-token sequences on one CUDA GPU

Every configuration runs in a fresh subprocess so RSS peaks never mix; ratios between rows
of one run, not absolute times, are the result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULT = "IFPO_BENCH_RESULT "


def run_worker(args: list[str], timeout: float, threads: int = 0) -> dict[str, Any]:
    """Run `python -m ifpo.bench worker ...` in a fresh process; parse its result line."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled")
    if threads > 0:
        # Fixed intra-op threads: on a shared machine, oversubscribed OpenMP pools distort
        # element-wise kernels far more than matmuls, which skews the ratios between rows.
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run(
        [sys.executable, "-m", "ifpo.bench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
    raise RuntimeError(f"benchmark worker {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")


def cmd_steps(opts: argparse.Namespace) -> int:
    from ifpo.bench.data import prepare
    from ifpo.bench.report import steps_table

    with tempfile.TemporaryDirectory(prefix="ifpo-bench-") as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        results = []
        for name in opts.only or DEFAULT_STEPS:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            results.append(
                run_worker(
                    [
                        "worker",
                        name,
                        "--workdir",
                        str(workdir),
                        "--batch",
                        str(opts.batch),
                        "--warmup",
                        str(opts.warmup),
                        "--steps",
                        str(opts.steps),
                    ],
                    opts.timeout,
                    opts.threads,
                )
            )
    print(steps_table(results, batch=opts.batch, warmup=opts.warmup, steps=opts.steps))
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=2))
    return 0


def cmd_worker(opts: argparse.Namespace) -> int:
    from ifpo.bench.steps import measure

    if opts.warmup < 1 or opts.steps < 1:
        raise SystemExit("--warmup and --steps must be at least 1")
    result = measure(opts.name, Path(opts.workdir), opts.batch, opts.warmup, opts.steps)
    print(RESULT + json.dumps(result), flush=True)
    return 0


def cmd_logprobs(opts: argparse.Namespace) -> int:
    from ifpo.bench.logprob_memory import logprobs_report

    print(logprobs_report(opts, run_worker))
    return 0


def cmd_logprob_worker(opts: argparse.Namespace) -> int:
    from ifpo.bench.logprob_memory import measure_peak

    print(
        RESULT + json.dumps(measure_peak(opts.method, opts.tokens, opts.hidden, opts.vocab, opts.chunk)),
        flush=True,
    )
    return 0


def cmd_attention(opts: argparse.Namespace) -> int:
    from ifpo.bench.attention import attention_report

    print(attention_report(opts, run_worker))
    return 0


def cmd_attention_worker(opts: argparse.Namespace) -> int:
    from ifpo.bench.attention import measure_kernel

    result = measure_kernel(
        opts.kernel, Path(opts.workdir), opts.pairs, opts.steps, not opts.no_prefix_sharing
    )
    print(RESULT + json.dumps(result), flush=True)
    return 0


def cmd_gpu(opts: argparse.Namespace) -> int:
    from ifpo.bench.gpu import gpu_report

    return gpu_report(opts)


DEFAULT_STEPS = [
    "ifpo-dpo",
    "ifpo-dpo-packing",
    "ifpo-dpo-padded",
    "ifpo-dpo-flex",
    "ifpo-dpo-packing-flex",
    "ifpo-rpo",
    "ifpo-iopo",
    "ifpo-iopo-padded",
    "trl-dpo",
    "floor",
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ifpo.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command")
    steps = sub.add_parser("steps", help="training-step throughput vs TRL and the bare floor (default)")
    for q in (p, steps):  # `python -m ifpo.bench` alone runs `steps` with these options
        q.add_argument("--batch", type=int, default=8, help="pairs (or quads) per step")
        q.add_argument("--warmup", type=int, default=2, help="untimed steps first")
        q.add_argument("--steps", type=int, default=6, help="timed steps")
        q.add_argument("--only", nargs="*", help=f"configurations to run (default: all of {DEFAULT_STEPS})")
        q.add_argument("--json", help="also write the rows to this JSON file")
        q.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
        q.add_argument(
            "--threads",
            type=int,
            default=0,
            help="torch threads per configuration (0: torch's default, all cores)",
        )
    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("name")
    worker.add_argument("--workdir", required=True)
    worker.add_argument("--batch", type=int, default=8)
    worker.add_argument("--warmup", type=int, default=2)
    worker.add_argument("--steps", type=int, default=6)
    logprobs = sub.add_parser("logprobs", help="chunked log-prob peak memory vs naive log_softmax")
    logprobs.add_argument("--vocab", type=int, default=128_256)
    logprobs.add_argument("--hidden", type=int, default=4096)
    logprobs.add_argument("--sequences", type=int, default=4)
    logprobs.add_argument("--length", type=int, default=4096)
    logprobs.add_argument("--chunk", type=int, default=1024, help="model.logprob_chunk_size")
    logprobs.add_argument(
        "--safe-gb",
        type=float,
        default=8.0,
        help="measure the naive path at a scaled token count when it would need more than this",
    )
    logprobs.add_argument("--timeout", type=float, default=900)
    lworker = sub.add_parser("logprob-worker", help=argparse.SUPPRESS)
    lworker.add_argument("method", choices=["chunked", "naive"])
    lworker.add_argument("--tokens", type=int, required=True)
    lworker.add_argument("--hidden", type=int, required=True)
    lworker.add_argument("--vocab", type=int, required=True)
    lworker.add_argument("--chunk", type=int, default=1024)
    attention = sub.add_parser("attention", help="segment-attention kernels head to head (sdpa vs flex)")
    attention.add_argument("--pairs", type=int, default=8, help="pairs in the packed micro-batch")
    attention.add_argument("--steps", type=int, default=5, help="timed steps per process (after the first)")
    attention.add_argument("--rounds", type=int, default=3, help="alternating processes per kernel")
    attention.add_argument(
        "--threads", type=int, default=0, help="torch threads per process (0: torch's default)"
    )
    attention.add_argument("--timeout", type=float, default=900)
    aworker = sub.add_parser("attention-worker", help=argparse.SUPPRESS)
    aworker.add_argument("kernel", choices=["sdpa", "flex"])
    aworker.add_argument("--workdir", required=True)
    aworker.add_argument("--pairs", type=int, default=8)
    aworker.add_argument("--steps", type=int, default=5)
    aworker.add_argument("--no-prefix-sharing", action="store_true")
    gpu = sub.add_parser(
        "gpu", help="layouts and attention kernels on one CUDA GPU (~1B model, 2048/8192 tokens)"
    )
    gpu.add_argument("--steps", type=int, default=5)
    gpu.add_argument("--warmup", type=int, default=2, help="untimed steps first (flex compiles here)")
    gpu.add_argument(
        "--batch", type=int, default=4, help="pairs per step at 2,048 tokens (scaled to keep tokens/step)"
    )
    gpu.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=[2048, 8192],
        help="tokens per (prompt, response) sequence, one table each",
    )
    gpu.add_argument("--length", type=int, help="one length only (instead of --lengths)")
    gpu.add_argument("--json", help="also write the rows to this JSON file")
    gpu.add_argument(
        "--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100 SXM: 989)"
    )
    gpu.add_argument(
        "--cpu-smoke", action="store_true", help=argparse.SUPPRESS
    )  # tiny model on CPU, for tests
    return p


def main(argv: list[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    commands = {
        None: cmd_steps,
        "steps": cmd_steps,
        "worker": cmd_worker,
        "logprobs": cmd_logprobs,
        "logprob-worker": cmd_logprob_worker,
        "gpu": cmd_gpu,
        "attention": cmd_attention,
        "attention-worker": cmd_attention_worker,
    }
    return commands[opts.command](opts)


if __name__ == "__main__":
    sys.exit(main())
