"""slurm/train_multinode.sbatch on the test SLURM cluster with the real train.py: 2 srun tasks = 2
ranks of real ZeRO-3 on CPU; `scontrol requeue` mid-run; the requeued job (same job id, same run
folder) resumes from the newest complete checkpoint and ends at the planned step. Also: the
template's USR2 timer reads `preemption.signal_lead_s` from the config. ~2-3 min on 2 cores.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

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
)
from tests.slurm_cluster import SlurmCluster

pytest.importorskip("deepspeed")
SBATCH = ROOT / "slurm" / "train_multinode.sbatch"
CPU = ["--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1", "--mem=4000"]


def _logs(folder: Path, tail: int = 4000) -> str:
    return "\n".join(p.read_text(errors="replace")[-tail:] for p in sorted(folder.glob("*.out")))


@pytest.mark.slurm
def test_two_srun_ranks_requeued_with_scontrol_resume_to_the_final_step(
    slurm_cluster: SlurmCluster, tmp_path
):
    paths = prepare(tmp_path)
    # The template adds hydra.run.dir (IFPO_RUN_ROOT/<job name>-<job id>) and the trainer shape.
    command = [
        o
        for o in overrides(paths, "unused", tmp_path, slow=1.0)
        if not o.startswith(("run_name=", "trainer.devices"))
    ]
    # MASTER_ADDR: the test node's SLURM name (ifpo-node) is not a resolvable host name, which
    # Lightning's SLURM environment would otherwise take as the rendezvous address.
    job_env = env(IFPO_PYTHON=sys.executable, IFPO_RUN_ROOT=str(tmp_path / "runs"), MASTER_ADDR="127.0.0.1")
    job = slurm_cluster.sbatch(
        SBATCH, *command, options=[*CPU, "--time=20", f"--output={tmp_path}/%x-%j.out"], env=job_env, cwd=ROOT
    )
    run_dir = tmp_path / "runs" / f"ifpo-train-{job}"
    try:
        wait_for_step(
            run_dir / "checkpoints" / "last.ckpt",
            2,
            timeout=300,
            alive=lambda: slurm_cluster.job_state(job) in ("PENDING", "RUNNING"),
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{_logs(tmp_path)}") from None
    slurm_cluster.requeue(job)  # SIGTERM to both ranks, KillWait (2 s here), SIGKILL; back to the queue
    state = slurm_cluster.wait_job(job, timeout=600)
    logs = _logs(tmp_path)
    assert state == "COMPLETED", logs
    assert slurm_cluster.restart_count(job) == 1, logs
    full = _logs(tmp_path, tail=10**8)
    assert "restart 1" in full and "resume=auto: continuing from" in full, logs
    metrics = final_metrics(run_dir)
    assert metrics["global_step"] == STEPS
    assert saved_step(run_dir / "checkpoints" / "last.ckpt") == STEPS
    # The time limit is 20 min and the default lead 300 s: the template armed its USR2 timer.
    assert "SIGUSR2 to the training ranks in" in full and "(lead 300 s of" in full, logs


USR2_PROBE = """#!/bin/bash
# Stand-in python: answer the template's lead-time question, then (as srun task) record USR2.
if [[ " $* " == *" --cfg job "* ]]; then echo "# @package preemption"; echo "signal_lead_s: 50"; exit 0; fi
trap 'echo "USR2 $(date +%s)" >> "$PROBE_DIR/usr2-$SLURM_PROCID"; exit 0' USR2
date +%s > "$PROBE_DIR/start-$SLURM_PROCID"
for _ in $(seq 600); do sleep 0.1; done
"""


@pytest.mark.slurm
def test_template_sends_usr2_lead_seconds_before_the_time_limit(slurm_cluster: SlurmCluster, tmp_path):
    (tmp_path / "train.py").write_text("")
    probe = tmp_path / "python"
    probe.write_text(USR2_PROBE)
    probe.chmod(0o755)
    began = time.time()
    job = slurm_cluster.sbatch(
        SBATCH,
        "preemption.signal_lead_s=50",
        options=[*CPU, "--time=1", f"--output={tmp_path}/%x-%j.out"],
        env={"IFPO_PYTHON": str(probe), "PROBE_DIR": str(tmp_path)},
        cwd=tmp_path,
    )
    state = slurm_cluster.wait_job(job, timeout=120)
    logs = _logs(tmp_path)
    assert state == "COMPLETED", logs
    for rank in (0, 1):  # every srun task got USR2 ~10 s in (60 s limit - 50 s lead), not at the limit
        sent = int((tmp_path / f"usr2-{rank}").read_text().split()[1])
        assert 3 <= sent - began <= 40, logs
    assert "(lead 50 s of" in logs
