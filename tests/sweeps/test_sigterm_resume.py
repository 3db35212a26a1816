"""A run SIGTERMed mid-epoch and restarted in the same folder ends exactly like an uninterrupted one."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from tests.sweeps.helpers import ROOT, TINY, subprocess_env, train_command

STEPS = 6
KILL_AFTER_STEP = 2


def _overrides(log_dir, data_dir, run_name, *extra):
    return [*TINY, f"trainer.max_steps={STEPS}", f"trainer.val_check_interval={STEPS}",
            "callbacks.resume_checkpoint.every_n_train_steps=1", f"paths.log_dir={log_dir}",
            f"data.synthetic.output_dir={data_dir}", f"run_name={run_name}", *extra]


def _final(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return metrics, state


def test_sigterm_mid_epoch_then_auto_resume_matches_uninterrupted(tmp_path, shared_data_dir):
    data_dir = shared_data_dir / "synthetic_sigterm"
    env = subprocess_env()
    reference = subprocess.run(train_command(_overrides(tmp_path, data_dir, "straight")), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=300, check=False)
    assert reference.returncode == 0, reference.stderr[-3000:]

    # The interrupted run: slowed down (sleep only) so the outside SIGTERM lands mid-run.
    slow = ["+callbacks.slow._target_=tests.sweeps.helpers.SlowSteps", "+callbacks.slow.seconds=0.5"]
    command = train_command(_overrides(tmp_path, data_dir, "killed", *slow))
    run_dir = tmp_path / "train" / "runs" / "killed"
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 240
    while True:
        assert process.poll() is None, f"run ended before the signal: {process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            try:
                step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
            except Exception:  # noqa: BLE001  (file still being written)
                step = 0
            if step >= KILL_AFTER_STEP:
                break
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    hpc = list(run_dir.glob("hpc_ckpt_*.ckpt"))
    assert len(hpc) == 1, output[-3000:]
    stopped_at = torch.load(hpc[0], map_location="cpu", weights_only=False)["global_step"]
    assert KILL_AFTER_STEP <= stopped_at < STEPS  # really mid-run
    assert not (run_dir / "metrics.json").exists()

    # Same command, same folder, no ckpt_path: resume=auto finds the SIGTERM checkpoint.
    resumed = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resume=auto: continuing from" in resumed.stdout + resumed.stderr
    assert "not resumable" not in resumed.stdout + resumed.stderr  # Lightning saw a stateful loader

    straight, straight_state = _final(tmp_path / "train" / "runs" / "straight")
    again, again_state = _final(run_dir)
    assert again["global_step"] == straight["global_step"] == STEPS
    for key in ("val/loss", "val/rewards/accuracies", "val/rewards/margins", "train/loss"):
        assert again[key] == pytest.approx(straight[key], rel=1e-5, abs=1e-6), key
    for name, tensor in straight_state["state_dict"].items():
        torch.testing.assert_close(again_state["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
