"""What `python train.py debug=fast` prints: one config line, no duplicates, no known noise, short bar."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from ifpo.training.sweep_summary import JobSummary, summary_table
from ifpo.training.terminal import short_name

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("module(s) in eval mode", "LeafSpec", "💡 Tip", "`srun` command is available", "CONFIG")


def test_debug_fast_terminal_is_quiet(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100", "PYTHONPATH": str(ROOT / "src"),
           "IFPO_ROOT": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "debug=fast",
            f"paths.log_dir={tmp_path}",
            f"paths.data_dir={tmp_path}/data",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    lines = [ln for chunk in out.splitlines() for ln in chunk.split("\r") if ln.strip()]
    messages = [re.sub(r"^\[\d\d:\d\d:\d\d \w+\] ", "", ln) for ln in lines if ln.startswith("[")]
    assert len(messages) == len(set(messages)), f"duplicated log lines: {messages}"
    for noise in NOISE:
        assert noise not in out, noise
    config_line = next(ln for ln in lines if "config: " in ln and "config_tree.log" in ln)
    tree = Path(re.search(r"config: (\S+config_tree\.log)", config_line).group(1))
    assert tree.is_file() and "CONFIG" in tree.read_text() and "rewards" not in config_line
    bar = [ln for ln in lines if ln.startswith("Epoch 0: 100%") and "val/acc=" in ln][-1]
    postfix = bar.split("it/s, ", 1)[1]
    assert "v_num" not in bar and len(postfix) <= 60, bar
    table_rows = [ln for ln in lines if ln.startswith("│")]
    assert "val/rewards/accuracies" in table_rows[0], "the optimised metric heads the final table"


def test_sweep_table_keeps_the_main_metric_at_100_columns():
    metrics = {
        "val/rewards/accuracies": 0.7143,
        "val/loss": 0.598,
        "val/rewards/margins": 4.5676,
        "val/rewards/chosen": -1.61,
        "val/rewards/rejected": -6.18,
        "val/logps/chosen": -334.07,
        "val/logps/rejected": -355.02,
        "global_step": 3,
    }
    jobs = [
        JobSummary(job=str(i), folder=str(i), overrides=[f"loss={loss}"], status="done", metrics=metrics)
        for i, loss in enumerate(("dpo", "rpo"))
    ]
    console = Console(width=100, record=True)
    console.print(summary_table(jobs, "val/rewards/accuracies"))
    text = console.export_text()
    assert "val/acc" in text and "0.7143" in text and "val/acc = val/rewards/accuracies" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert short_name("train/loss") == "loss" and short_name("val/rewards/margins") == "val/margin"
