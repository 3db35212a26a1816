"""`train.py` itself on 2 ranks of real ZeRO-3 (CPU, gloo), full fine-tuning and LoRA: SIGTERM at a
step, the same command again resumes from the DeepSpeed directory checkpoint, skipping a
half-written one, and ends with the same final metrics as an uninterrupted run.

Full: SIGTERM reaches rank 0 only (as `kill PID` would), so rank 1 learns it from the all-reduce
at the step boundary. LoRA: the whole process group is signalled (as SLURM and Ctrl-C do).
About 3 launches x 2 ranks per case: ~1 min per case on a quiet 2-core machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.scale.zero3_train_cmd import (
    ROOT,
    STEPS,
    env,
    final_metrics,
    overrides,
    prepare,
    saved_step,
    wait_for_step,
    wait_group_gone,
)

pytest.importorskip("deepspeed")


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return prepare(tmp_path_factory.mktemp("zero3_preempt"))


def _train(args: list[str], port: int, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT,
                            env=env(MASTER_PORT=str(port)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, **kwargs)


def _finish(process: subprocess.Popen, timeout: float = 600) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        wait_group_gone(process.pid)
    return output


# The LoRA case (about a minute) runs with `make test-all`; the full case keeps the protocol in CI.
@pytest.mark.parametrize("lora", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["full", "lora"])
def test_sigterm_then_same_command_resumes_from_the_directory_checkpoint(tmp_path, paths, lora):
    port = 29000 + os.getpid() % 500 + 10 * lora
    straight = _train(overrides(paths, "straight", tmp_path, lora), port)
    output = _finish(straight)
    assert straight.returncode == 0, output[-4000:]

    command = overrides(paths, "killed", tmp_path, lora, slow=1.0)
    run_dir = tmp_path / "train" / "runs" / "killed"
    killed = _train(command, port + 1)
    try:
        wait_for_step(run_dir / "checkpoints" / "last.ckpt", 2, alive=lambda: killed.poll() is None)
        if lora:
            os.killpg(killed.pid, signal.SIGTERM)  # every rank gets it
        else:
            killed.send_signal(signal.SIGTERM)  # rank 0 alone
        output = _finish(killed, timeout=300)
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
    assert killed.returncode == 128 + signal.SIGTERM, output[-4000:]
    (hpc,) = run_dir.glob("hpc_ckpt_*.ckpt")  # one checkpoint for the stop, not one per rank or signal
    assert hpc.is_dir() and 2 <= saved_step(hpc) < STEPS, output[-4000:]
    assert len(list(hpc.glob("checkpoint/zero_pp_rank_*_optim_states.pt"))) == 2  # both ranks' shards
    assert not (run_dir / "metrics.json").exists()
    if lora:  # only adapters (+ their optimizer state) are written, never the frozen base
        import torch

        states = torch.load(next(hpc.glob("checkpoint/zero_pp_rank_0_mp_rank_00_model_states.pt")),
                            map_location="cpu", weights_only=False)
        assert states["module"] and all("lora_" in k for k in states["module"])
        assert not states.get("frozen_param_fragments")

    # Left behind by a kill during a later save: newer, but without rank 1's optimizer shard.
    half = run_dir / "hpc_ckpt_50.ckpt"
    shutil.copytree(hpc, half)
    (half / "ifpo_complete.json").unlink()
    next(half.glob("checkpoint/zero_pp_rank_1_mp_rank_00_optim_states.pt")).unlink()
    (run_dir / "checkpoints" / "last.ckpt.partial").mkdir()

    resumed = _train(command, port + 2)
    output = _finish(resumed)
    assert resumed.returncode == 0, output[-4000:]
    assert f"skipping {half}: incomplete" in output
    assert f"resume=auto: continuing from {hpc} (DeepSpeed directory)" in output

    again, reference = final_metrics(run_dir), final_metrics(tmp_path / "train" / "runs" / "straight")
    assert again["global_step"] == reference["global_step"] == STEPS
    for key in ("train/loss", "val/loss", "val/rewards/accuracies", "val/rewards/margins"):
        assert again[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-6), key
    # The final last.ckpt made the preemption checkpoints and the leftovers obsolete.
    assert not list(run_dir.glob("hpc_ckpt_*")) and not list(run_dir.glob("checkpoints/*.partial"))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("last")) == [
        "last.ckpt"
    ]
    assert saved_step(run_dir / "checkpoints" / "last.ckpt") == STEPS
