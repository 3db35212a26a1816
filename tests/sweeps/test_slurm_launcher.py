"""hydra/launcher=slurm: config wiring, a real 2-job array on the test cluster, and a requeued job
resuming."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import ifpo.config  # noqa: F401  (registers the schemas)
from tests.slurm_cluster import SlurmCluster
from tests.sweeps.helpers import ROOT, TINY, subprocess_env, train_command

# Tiny resources so the GPU-cluster defaults of conf/hydra/launcher/slurm.yaml fit the CPU test node.
CPU_LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=null",
    "hydra.launcher.timeout_min=10",
    "hydra.launcher.partition=debug",
]


def test_launcher_resources_follow_the_trainer():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=slurm",
                "trainer.devices=4",
                "trainer.num_nodes=2",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.account=proj",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert (launcher.tasks_per_node, launcher.nodes, launcher.gpus_per_node) == (4, 2, 4)
    assert (launcher.partition, launcher.account) == ("gpu", "proj")
    # The USR2 lead time is the config's preemption.signal_lead_s (slurm/*.sbatch read it too).
    assert launcher.signal_delay_s == cfg.preemption.signal_lead_s == 300
    assert launcher.additional_parameters.requeue is True
    assert launcher._target_.endswith("SlurmLauncher")


def _launch(cluster: SlurmCluster, overrides: list[str]) -> subprocess.Popen:
    env = subprocess_env(**{k: v for k, v in cluster.env.items() if k == "SLURM_CONF"})
    return subprocess.Popen(
        train_command([*CPU_LAUNCHER, *overrides], multirun=True),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _array_tasks(sweep_dir: Path) -> list[str]:
    """submitit's per-job folders: <array job id>_<task id> (a one-job sweep is a plain job id)."""
    names = [p.name for p in (sweep_dir / ".submitit").iterdir()]
    tasks = sorted(n for n in names if re.fullmatch(r"\d+_\d+", n))
    return tasks or sorted(n for n in names if n.isdigit())


def _logs(sweep_root: Path, tail: int = 2500) -> str:
    return "\n".join(p.read_text()[-tail:] for p in sorted(sweep_root.glob("**/.submitit/*/*.out")))


@pytest.mark.slurm
def test_multirun_runs_as_one_job_array(slurm_cluster, tmp_path, shared_data_dir):
    process = _launch(
        slurm_cluster,
        [
            *TINY,
            "seed=1,2",
            "trainer.max_steps=1",
            "trainer.val_check_interval=1",
            f"paths.log_dir={tmp_path}",
            f"data.synthetic.output_dir={shared_data_dir}/synthetic_slurm",
        ],
    )
    output, _ = process.communicate(timeout=400)
    assert process.returncode == 0, output[-3000:] + _logs(tmp_path)
    (sweep_dir,) = list((tmp_path / "train" / "multiruns").iterdir())
    tasks = _array_tasks(sweep_dir)
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1  # both jobs are tasks of one array
    for job in ("0", "1"):
        metrics = json.loads((sweep_dir / job / "metrics.json").read_text())["metrics"]
        assert metrics["global_step"] == 1
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["done", "done"]


@pytest.mark.slurm
@pytest.mark.slow  # `make test-all`; tests/slurm/test_train_requeue.py requeues 2 srun ranks by default
def test_requeued_training_job_resumes_and_ends_at_the_planned_step(slurm_cluster, tmp_path, shared_data_dir):
    steps = 6
    process = _launch(
        slurm_cluster,
        [
            *TINY,
            f"trainer.max_steps={steps}",
            f"trainer.val_check_interval={steps}",
            "callbacks.resume_checkpoint.every_n_train_steps=1",
            "+callbacks.slow._target_=tests.sweeps.helpers.SlowSteps",
            "+callbacks.slow.seconds=0.8",
            f"paths.log_dir={tmp_path}",
            f"data.synthetic.output_dir={shared_data_dir}/synthetic_slurm",
        ],
    )
    try:
        _requeue_mid_run(slurm_cluster, process, tmp_path, steps)
    finally:
        if process.poll() is None:
            process.kill()


def _requeue_mid_run(slurm_cluster, process, tmp_path, steps):
    deadline = time.monotonic() + 300
    last = None
    while True:
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "training never checkpointed step 2"
        found = list(tmp_path.glob("train/multiruns/*/0/checkpoints/last.ckpt"))
        if found:
            last = found[0]
            try:
                if torch.load(last, map_location="cpu", weights_only=False)["global_step"] >= 2:
                    break
            except Exception:  # noqa: BLE001,S110  (still being written: look again)
                pass
        time.sleep(0.2)
    sweep_dir = last.parents[2]
    (job_id,) = _array_tasks(sweep_dir)
    slurm_cluster.requeue(job_id)
    output, _ = process.communicate(timeout=400)
    logs = _logs(tmp_path)
    assert process.returncode == 0, output[-3000:] + logs
    assert slurm_cluster.restart_count(job_id) == 1, logs
    metrics = json.loads((sweep_dir / "0" / "metrics.json").read_text())["metrics"]
    assert metrics["global_step"] == steps
    full = _logs(tmp_path, tail=10**7)
    assert "resume=auto: continuing from" in full and "restart 1" in full
