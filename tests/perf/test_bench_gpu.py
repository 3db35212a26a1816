"""`python -m ifpo.bench gpu` and `make gpu-check`: refuse cleanly without CUDA; the table runs (CPU smoke)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from ifpo.bench import gpu
from ifpo.bench.__main__ import main as bench_main
from ifpo.bench.__main__ import parser
from ifpo.scale import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without CUDA")
def test_gpu_bench_and_check_refuse_without_cuda(capsys):
    assert bench_main(["gpu"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert gpu_check.main(["--compare-lengths", "2048", "8192"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_gpu_rows_cover_every_kernel_and_lengths():
    kernels = {row[3] for row in gpu.ROWS}
    assert {"sdpa", "flex", "flash_varlen"} <= kernels
    assert parser().parse_args(["gpu"]).lengths == [2048, 8192]
    assert gpu._pairs(4, 2048) == 4 and gpu._pairs(4, 8192) == 1 and gpu._pairs(4, 64) == 4


def test_cpu_smoke_table(tmp_path, capsys):
    out = tmp_path / "rows.json"
    opts = argparse.Namespace(lengths=[40], batch=2, steps=1, warmup=1, cpu_smoke=True, peak_tflops=1.0, json=str(out))
    assert gpu.gpu_report(opts) == 0
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())["lengths"]["40"]
    assert [r["layout"] for r in rows] == ["padded", "prefix+sdpa-dense", "packing+sdpa-dense", "floor"]
    assert all(r["tokens_per_s"] > 0 for r in rows)
    for r in rows:
        assert r["layout"] in printed
