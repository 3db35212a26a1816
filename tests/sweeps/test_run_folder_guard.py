"""Issue 15.2/15.3: a run folder is never silently overwritten, and Ctrl-C checkpoints like SIGTERM.

A rerun with another config is refused naming the differing keys (`resume=force` overrides and is
recorded in the folder); a finished run says so and exits 0 without touching its results.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from ifpo.training.run_folder import RunFolder, RunFolderConflict
from tests.hydra_helpers import compose_config
from tests.sweeps.helpers import ROOT, TINY, run_train, subprocess_env, train_command


# ------------------------------------------------------------------ the decision, in-process
def test_record_then_resume_refuse_force_and_finished(tmp_path):
    folder = RunFolder(tmp_path)
    base = compose_config("train", ["debug=fast"], output_dir=tmp_path)
    other = compose_config("train", ["debug=fast", "loss.beta=0.5", "optim.lr=0.002"], output_dir=tmp_path)
    assert folder.check(base, "auto") == "start"  # nothing to protect yet: record written
    assert (tmp_path / ".ifpo" / "config.json").is_file()
    assert folder.check(other, "auto") == "start"  # still nothing trained: the record follows the config
    assert folder.check(base, "auto") == "start"
    torch.save({"global_step": 3}, tmp_path / "hpc_ckpt_1.ckpt")
    assert folder.check(base, "auto") == "resume"
    renamed = compose_config("train", ["debug=fast", "run_name=another_name"], output_dir=tmp_path)
    assert (
        folder.check(renamed, "auto") == "resume"
    )  # run_name (a start time by default) is not a hyper-parameter
    with pytest.raises(RunFolderConflict) as refused:
        folder.check(other, "auto")
    assert refused.value.code == 2
    message = str(refused.value)
    assert (
        "2 differing key(s)" in message
        and "loss.beta: 0.1 -> 0.5" in message
        and "optim.lr: 0.0003 -> 0.002" in message
    )
    assert "resume=force" in message
    with pytest.raises(RunFolderConflict):
        folder.check(other, "never")  # starting over would overwrite as well
    assert folder.check(other, "force") == "resume"
    (entry,) = [
        json.loads(line) for line in (tmp_path / ".ifpo" / "resume_force.jsonl").read_text().splitlines()
    ]
    assert entry["changed"] == {"loss.beta": ["0.1", "0.5"], "optim.lr": ["0.0003", "0.002"]}
    assert folder.check(other, "auto") == "resume"  # the forced config is the record now
    folder.mark_finished(3)
    assert folder.check(other, "auto") == "finished"
    assert folder.check(other, "force") == "resume" and not folder.finished  # trains on


# ------------------------------------------------------------------ train.py, as typed
def _command(tmp_path, shared_data_dir, *extra):
    return [
        *TINY,
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        f"paths.log_dir={tmp_path}",
        f"data.synthetic.output_dir={shared_data_dir / 'synthetic_guard'}",
        "run_name=guarded",
        *extra,
    ]


def _snapshot(run_dir):
    files = [
        run_dir / "metrics.json",
        run_dir / "checkpoints" / "last.ckpt",
        *sorted((run_dir / ".hydra").iterdir()),
    ]
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def test_rerunning_a_finished_folder_never_overwrites_it(tmp_path, shared_data_dir):
    run_dir = tmp_path / "train" / "runs" / "guarded"
    first = run_train(_command(tmp_path, shared_data_dir))
    assert first.returncode == 0, first.stderr[-3000:]
    before = _snapshot(run_dir)

    same = run_train(_command(tmp_path, shared_data_dir))
    assert same.returncode == 0, same.stderr[-3000:]
    assert "is finished" in same.stdout + same.stderr
    assert _snapshot(run_dir) == before  # metrics, checkpoint and .hydra/*.yaml untouched

    changed = run_train(_command(tmp_path, shared_data_dir, "loss.beta=0.5"))
    assert changed.returncode == 2, changed.stderr[-3000:]
    assert "loss.beta: 0.1 -> 0.5" in changed.stdout + changed.stderr
    assert "Traceback" not in changed.stderr
    assert _snapshot(run_dir) == before

    forced = run_train(
        _command(tmp_path, shared_data_dir, "loss.beta=0.5", "trainer.max_steps=3", "resume=force")
    )
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["global_step"] == 3
    (entry,) = [json.loads(x) for x in (run_dir / ".ifpo" / "resume_force.jsonl").read_text().splitlines()]
    assert set(entry["changed"]) == {"loss.beta", "trainer.max_steps"}


def test_ctrl_c_checkpoints_and_the_same_command_resumes(tmp_path, shared_data_dir):
    slow = [
        "+callbacks.slow._target_=tests.sweeps.helpers.SlowSteps",
        "+callbacks.slow.seconds=0.5",
        "callbacks.resume_checkpoint.every_n_train_steps=1",
    ]
    command = train_command(
        _command(
            tmp_path,
            shared_data_dir,
            "trainer.max_steps=6",
            "trainer.val_check_interval=6",
            "run_name=ctrl_c",
            *slow,
        )
    )
    run_dir = tmp_path / "train" / "runs" / "ctrl_c"
    process = subprocess.Popen(
        command, cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output[-3000:]
    assert "SIGINT: checkpointing at the next step boundary" in output
    (hpc,) = run_dir.glob("hpc_ckpt_*.ckpt")
    stopped_at = torch.load(hpc, map_location="cpu", weights_only=False)["global_step"]
    assert 1 <= stopped_at < 6
    resumed = subprocess.run(
        command, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"continuing from {hpc}" in resumed.stdout + resumed.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["global_step"] == 6
