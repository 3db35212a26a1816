"""Peak extra memory of the chunked log-prob path vs a naive float32 log_softmax (issue target: <= 1/8).

Each measurement runs in a fresh process: inputs (hidden states, LM-head weight, targets)
are allocated and touched first, then the resident-set high-water mark (ru_maxrss) is read
before and after the log-prob computation; the difference is the computation's extra peak.
The naive path at full size (4 x 4096 tokens x 128,256 vocabulary) needs ~16.8 GB of float32
logits + log_softmax output, more than this machine can spare next to other jobs, so it is
measured at a scaled token count and extrapolated linearly (it is linear in tokens), and the
exact analytic full-size figure is printed next to it. The chunked path is measured at full size.
"""

from __future__ import annotations

import argparse
import resource
from collections.abc import Callable
from typing import Any

GB = 1e9


def _current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux >= 4.0: `5` > clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    """VmHWM: the high-water mark since the last reset (ru_maxrss cannot be reset)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_peak(method: str, tokens: int, hidden: int, vocab: int, chunk: int) -> dict[str, Any]:
    import torch

    from ifpo.models.logprobs import chunked_token_logprobs, naive_token_logprobs

    torch.manual_seed(0)
    # Initialised in place: a temporary here would raise the high-water mark above what the
    # computation itself needs and hide its peak.
    h = torch.empty(tokens, hidden).normal_(0, 0.02)
    w = torch.empty(vocab, hidden).normal_(0, 0.02)
    t = torch.randint(0, vocab, (tokens,))
    # Imports and set-up may have peaked above what is resident now; start the mark afresh so
    # that earlier peak cannot hide the computation's own.
    reset = _reset_peak_rss()
    before = _current_rss()
    if not reset and _peak_rss() > before + 64 * 2**20:
        raise RuntimeError("set-up raised the RSS high-water mark above the inputs; the peak would be hidden")
    with torch.no_grad():
        if method == "chunked":
            out = chunked_token_logprobs(h, w, t, chunk_size=chunk)
        else:
            out = naive_token_logprobs(h, w, t)
    peak = _peak_rss()
    return {"method": method, "tokens": tokens, "extra_bytes": peak - before, "checksum": float(out.sum())}


def logprobs_report(
    opts: argparse.Namespace, run_worker: Callable[[list[str], float], dict[str, Any]]
) -> str:
    tokens = opts.sequences * opts.length
    naive_full = 2 * tokens * opts.vocab * 4  # float32 logits + float32 log_softmax output
    naive_tokens = tokens
    while naive_tokens > 1 and 2 * naive_tokens * opts.vocab * 4 > opts.safe_gb * GB:
        naive_tokens //= 2

    def run(method: str, n: int) -> dict[str, Any]:
        args = [
            "logprob-worker",
            method,
            "--tokens",
            str(n),
            "--hidden",
            str(opts.hidden),
            "--vocab",
            str(opts.vocab),
            "--chunk",
            str(opts.chunk),
        ]
        return run_worker(args, opts.timeout)

    chunked = run("chunked", tokens)
    naive = run("naive", naive_tokens)
    naive_scaled = naive["extra_bytes"] * tokens / naive_tokens
    ratio_measured = chunked["extra_bytes"] / naive_scaled
    ratio_analytic = chunked["extra_bytes"] / naive_full
    lines = [
        (
            f"log-prob peak extra memory: vocab {opts.vocab:,}, hidden {opts.hidden:,}, "
            f"{opts.sequences} x {opts.length:,} tokens, chunk {opts.chunk}"
        ),
        f"  chunked (measured, full size)                 {chunked['extra_bytes'] / GB:8.2f} GB",
        f"  naive float32 log_softmax, measured at {naive_tokens:,} tokens {naive['extra_bytes'] / GB:8.2f} "
        f"GB",
        f"  naive, that measurement scaled to {tokens:,} tokens  {naive_scaled / GB:8.2f} GB",
        f"  naive, analytic full size (logits + log_softmax, fp32)  {naive_full / GB:8.2f} GB",
        (
            f"  chunked / naive: {ratio_measured:.3f} (scaled measurement), {ratio_analytic:.3f} (analytic); "
            f"target <= 0.125: {'met' if max(ratio_measured, ratio_analytic) <= 0.125 else 'NOT met'}"
        ),
    ]
    return "\n".join(lines)
