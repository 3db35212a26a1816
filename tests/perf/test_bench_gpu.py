"""`python -m ifpo.bench gpu` and `make gpu-check`: refuse cleanly without CUDA; the table runs (CPU
smoke)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from ifpo.bench import gpu
from ifpo.bench.__main__ import parser
from ifpo.scale import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without CUDA")
def test_gpu_check_with_kernel_comparison_refuses_without_cuda(capsys):
    assert gpu_check.main(["--compare-lengths", "2048", "8192"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_gpu_rows_cover_every_kernel_and_lengths():
    kernels = {row[3] for row in gpu.ROWS}
    assert {"sdpa", "flex", "flash_varlen"} <= kernels
    assert parser().parse_args(["gpu"]).lengths == [2048, 8192]
    assert gpu._pairs(4, 2048) == 4 and gpu._pairs(4, 8192) == 1 and gpu._pairs(4, 64) == 4


def test_cpu_smoke_rows_are_written_as_json(tmp_path):
    out = tmp_path / "rows.json"
    opts = argparse.Namespace(
        lengths=[24], length=None, batch=1, steps=1, warmup=1, cpu_smoke=True, peak_tflops=1.0, json=str(out)
    )
    assert gpu.gpu_report(opts) == 0
    rows = json.loads(out.read_text())["lengths"]["24"]
    assert [r["layout"] for r in rows] == ["padded", "prefix+sdpa-dense", "packing+sdpa-dense", "floor"]
    assert all(r["tokens_per_s"] > 0 and r["tokens"] == rows[0]["tokens"] for r in rows)


def test_attention_bench_alternates_kernels_and_reports_the_ratio(monkeypatch):
    from ifpo.bench import attention
    from ifpo.bench.__main__ import DEFAULT_STEPS
    from ifpo.bench.steps import SETUPS

    assert {"ifpo-dpo-flex", "ifpo-dpo-packing-flex"} <= set(DEFAULT_STEPS)
    assert SETUPS["ifpo-dpo-flex"].attention == "flex" and SETUPS["ifpo-dpo"].attention == "auto"
    monkeypatch.setattr("ifpo.bench.data.prepare", lambda workdir: None)
    order = []

    def fake_worker(args, timeout, threads):
        order.append(args[1])
        step = 2.0 if args[1] == "flex" else 1.0
        return {"kernel": args[1], "first_s": 9.0, "step_s": step, "tokens": 100, "threads": threads}

    opts = argparse.Namespace(pairs=2, steps=1, rounds=2, threads=1, timeout=10)
    text = attention.attention_report(opts, fake_worker)
    assert order == ["sdpa", "flex"] * 4  # alternating, two layouts x two rounds
    assert text.count("flex / sdpa step time: 2.00") == 2
