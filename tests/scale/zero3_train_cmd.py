"""`python train.py` on 2 CPU ranks of real ZeRO-3 (gloo), for the preemption/requeue tests.

The overrides are what a user would type; the tiny 2-layer model (tests/scale/zero3_common.py)
is loaded from saved weights so every run starts from the same parameters.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.scale.zero3_common import write_tiny2, write_tiny2_pretrained

ROOT = Path(__file__).resolve().parents[2]
STEPS = 4
LORA = ["peft=lora", "peft.r=4", "peft.alpha=8", "peft.dropout=0.0", "ref.mode=adapter"]


def prepare(base: Path) -> dict[str, Path]:
    """Model config, saved weights and the synthetic data, made once (never by two ranks at once)."""
    from ifpo.data.sources import ensure_synthetic_files
    from tests.hydra_helpers import compose_config

    paths = {"tiny": write_tiny2(base / "tiny2"), "pretrained": write_tiny2_pretrained(base / "pretrained"),
             "data": base / "data"}
    cfg = compose_config("train", _data(paths))
    ensure_synthetic_files(cfg.data.synthetic)
    return paths


def _data(paths: dict[str, Path]) -> list[str]:
    return [
        f"data.synthetic.output_dir={paths['data']}",
        "data.synthetic.num_train_tasks=12",
        "data.shuffle=false",
        "data.max_length=256",
        "data.max_prompt_length=192",
    ]


def overrides(
    paths: dict[str, Path], run_name: str, log_dir: Path, lora: bool = False, slow: float = 0.0
) -> list[str]:
    """2 ranks x 2 examples, validation at the last step, last.ckpt after every step."""
    extra = (
        ["+callbacks.slow._target_=tests.sweeps.helpers.SlowSteps", f"+callbacks.slow.seconds={slow}"]
        if slow
        else []
    )
    return [
        "strategy=zero3", "strategy.cpu_test=true", "debug=fast", "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"model.config={paths['tiny']}", f"model.name_or_path={paths['pretrained']}", *_data(paths),
        "data.batch_size=2", "data.eval_batch_size=2", "trainer.limit_val_batches=2",
        f"trainer.max_steps={STEPS}",
        f"trainer.val_check_interval={STEPS}", "optim.warmup_ratio=0.0",
        "callbacks.resume_checkpoint.every_n_train_steps=1",
        "callbacks.progress_bar=null", "+trainer.enable_progress_bar=false", f"paths.log_dir={log_dir}",
        f"run_name={run_name}", *(LORA if lora else []), *extra,
    ]  # fmt: skip


def env(**extra: str) -> dict[str, str]:
    """This checkout first on the path, one thread per rank, DeepSpeed on CPU, no outer SLURM job."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "PL_GLOBAL_SEED"))}
    base.update(
        {
            "IFPO_ROOT": str(ROOT),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "DS_ACCELERATOR": "cpu",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "WANDB_MODE": "offline",
            "TOKENIZERS_PARALLELISM": "false",
            "HYDRA_FULL_ERROR": "1",
        }
    )
    base.update(extra)
    return base


def saved_step(checkpoint: Path) -> int:
    """The step of a complete directory checkpoint (its completion marker), 0 while none."""
    try:
        return int(json.loads((checkpoint / "ifpo_complete.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_for_step(checkpoint: Path, step: int, alive, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while saved_step(checkpoint) < step:
        assert alive(), f"run ended before {checkpoint} reached step {step}"
        assert time.monotonic() < deadline, f"{checkpoint} never reached step {step}"
        time.sleep(0.1)


def wait_group_gone(pgid: int, timeout: float = 60) -> None:
    """Wait until every process of a process group (both ranks) has exited; kill leftovers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    raise AssertionError(f"process group {pgid} still running after {timeout} s")


def final_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]
