"""Shared bits of the sweep/resume/W&B tests: the tiny training command and test-only callbacks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl

ROOT = Path(__file__).resolve().parents[2]
# debug=fast with tiny batches; validation only at the end, so every step is cheap.
TINY = ["debug=fast", "data.batch_size=2", "data.eval_batch_size=4", "trainer.limit_val_batches=1"]


class SlowSteps(pl.Callback):
    """Sleep after each optimizer step, so an outside signal reliably lands mid-run (numerics untouched)."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args, **kwargs) -> None:
        time.sleep(self.seconds)


def train_command(overrides: list[str], multirun: bool = False) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *(["-m"] if multirun else []), *overrides]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "PL_GLOBAL_SEED"))}
    env.update(
        {
            "IFPO_ROOT": str(ROOT),
            "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",  # this checkout's sources
            "WANDB_MODE": "offline",
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "HYDRA_FULL_ERROR": "1",
        }
    )
    env.update(extra)
    return env


def run_train(
    overrides: list[str], multirun: bool = False, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess:
    done = subprocess.run(
        train_command(overrides, multirun),
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done
