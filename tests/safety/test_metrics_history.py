"""metrics.csv keeps its whole history over real kills and resumes (issue 15, item 1).

A run is SIGKILLed twice at random points after a checkpoint (rows past the checkpoint already
on disk), resumed each time in the same folder, and its metrics.csv must have exactly the
steps, per metric, of an uninterrupted run, each once, with the same training losses.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from collections import defaultdict

import pytest
import torch

from tests.sweeps.helpers import ROOT, TINY, subprocess_env, train_command

STEPS = 8
KILLS_AFTER_STEP = (2, 5)  # two kills: any number of kills keeps one continuous series


def _overrides(log_dir, data_dir, run_name, *extra):
    return [
        *TINY,
        f"trainer.max_steps={STEPS}",
        "trainer.val_check_interval=4",
        "trainer.log_every_n_steps=1",
        "callbacks.resume_checkpoint.every_n_train_steps=2",
        f"paths.log_dir={log_dir}",
        f"data.synthetic.output_dir={data_dir}",
        f"run_name={run_name}",
        *extra,
    ]


def _env():
    return subprocess_env()


def _series(run_dir) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(step, value)] in file order."""
    with open(run_dir / "csv" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "epoch") and value not in ("", None):
                out[key].append((int(row["step"]), float(value)))
    return out


def _csv_steps(run_dir) -> list[int]:
    path = run_dir / "csv" / "version_0" / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("step")]


def _ckpt_step(run_dir) -> int:
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        return (
            int(torch.load(last, map_location="cpu", weights_only=False)["global_step"])
            if last.exists()
            else -1
        )
    except Exception:  # noqa: BLE001  (file still being written)
        return -1


def _kill_after(command, run_dir, min_step) -> None:
    """Start the run; SIGKILL it once a checkpoint >= min_step exists and rows past it are on disk."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 240
    try:
        while True:
            assert process.poll() is None, f"run ended before the kill: {process.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            step = _ckpt_step(run_dir)
            if step >= min_step and max(_csv_steps(run_dir), default=-1) >= step:
                break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)


def test_metrics_csv_survives_two_sigkills_and_resumes(tmp_path, shared_data_dir):
    data_dir = shared_data_dir / "synthetic_history"
    straight = subprocess.run(
        train_command(_overrides(tmp_path, data_dir, "straight")),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert straight.returncode == 0, straight.stderr[-3000:]

    slow = ["+callbacks.slow._target_=tests.sweeps.helpers.SlowSteps", "+callbacks.slow.seconds=0.4"]
    command = train_command(_overrides(tmp_path, data_dir, "killed", *slow))
    run_dir = tmp_path / "train" / "runs" / "killed"
    for min_step in KILLS_AFTER_STEP:
        _kill_after(command, run_dir, min_step)
        assert _csv_steps(run_dir), "the killed run left no metrics"
    resumed = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resume=auto: continuing from" in resumed.stdout + resumed.stderr

    expected, got = _series(tmp_path / "train" / "runs" / "straight"), _series(run_dir)
    assert set(got) == set(expected)
    assert [s for s, _ in expected["train/loss"]] == list(range(STEPS))  # the reference logs every step
    for metric, series in expected.items():
        assert [s for s, _ in got[metric]] == [s for s, _ in series], (
            metric
        )  # same steps, once each, in order
    for metric in ("train/loss", "val/loss"):
        assert [v for _, v in got[metric]] == pytest.approx(
            [v for _, v in expected[metric]], rel=1e-4, abs=1e-6
        )
