"""A private, single-node SLURM cluster for tests (munged + slurmctld + slurmd on this machine).

Everything lives under one temp dir: its own munge key and socket, its own slurm.conf (reached
through ``SLURM_CONF``), its own ports, spool/state/log/pid files. A system-wide SLURM or munge
install (``/etc/slurm``, ``/run/munge``) is never read or touched, so the cluster can coexist with
a real one. ``stop()`` terminates only the daemons ``start()`` launched and deletes the temp dir.

Requires root (SlurmUser=root) and the Debian packages ``slurmctld slurmd slurm-client munge``;
:func:`ensure_slurm_installed` apt-installs them when missing.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

SLURM_PACKAGES: tuple[str, ...] = ("slurmctld", "slurmd", "slurm-client", "munge")
REQUIRED_BINARIES: tuple[str, ...] = (
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sinfo",
    "squeue",
    "scontrol",
    "scancel",
)
TERMINAL_STATES: frozenset[str] = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
    }
)
# Seconds a requeued job waits before it may start again (Slurm's default is 120).
CRED_EXPIRE_S = 5


class SlurmError(RuntimeError):
    """The test cluster could not be installed, started or driven; the message says why."""


def missing_binaries() -> list[str]:
    return [name for name in REQUIRED_BINARIES if shutil.which(name) is None]


def ensure_slurm_installed() -> None:
    """Apt-install the SLURM + munge packages if any daemon or client is missing (root only)."""
    if not missing_binaries():
        return
    if os.geteuid() != 0:
        raise SlurmError(f"SLURM binaries {missing_binaries()} are missing and installing them needs root.")
    if shutil.which("apt-get") is None:
        raise SlurmError(f"SLURM binaries {missing_binaries()} are missing and apt-get is not available.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_lock = ["-o", "DPkg::Lock::Timeout=300"]  # another apt run may hold the dpkg lock
    commands = (
        ["apt-get", *wait_for_lock, "update", "-q"],
        ["apt-get", *wait_for_lock, "install", "-y", "-q", *SLURM_PACKAGES],
    )
    for command in commands:
        try:
            done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise SlurmError(f"`{' '.join(command)}` timed out after 900 s; cannot install SLURM.") from None
        if done.returncode != 0:
            raise SlurmError(
                f"`{' '.join(command)}` failed (rc={done.returncode}); cannot install SLURM "
                f"(is the package registry reachable?).\n{_tail(done.stdout + done.stderr)}"
            )
    if missing_binaries():
        raise SlurmError(f"apt installed {SLURM_PACKAGES} but {missing_binaries()} are still missing.")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def machine_memory_mb() -> int:
    """Total memory in MiB, from /proc/meminfo (what `free -m` reports)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise SlurmError("MemTotal missing from /proc/meminfo")


def parse_record(line: str) -> dict[str, str]:
    """Split one `scontrol -o show job` line into its Key=Value fields."""
    fields: dict[str, str] = {}
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


class SlurmCluster:
    """One node, one partition (``debug``), every CPU of this machine; jobs run as the caller (root)."""

    def __init__(self, root: Path | None = None, partition: str = "debug") -> None:
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="ifpo-slurm-"))
        self.partition = partition
        self.hostname = socket.gethostname().split(".")[0]
        self.node_name = "ifpo-node"
        self.conf_path = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge.socket"
        self.jobcomp_log = self.root / "log" / "jobcomp.txt"
        self.startup_seconds: float | None = None
        self._pid_files = {
            name: self.root / "run" / f"{name}.pid" for name in ("munged", "slurmctld", "slurmd")
        }
        self._started: list[str] = []

    # ---------------------------------------------------------------- lifecycle
    @property
    def env(self) -> dict[str, str]:
        """Environment for client commands: the caller's, minus any outer SLURM job, plus our conf."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "SBATCH_"))}
        env["SLURM_CONF"] = str(self.conf_path)
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Write config, launch munged -> slurmctld -> slurmd, return once the node is idle."""
        try:
            if os.geteuid() != 0:
                raise SlurmError(
                    "SlurmCluster runs its daemons as root (SlurmUser=root); run the tests as root."
                )
            ensure_slurm_installed()
        except SlurmError:
            self.stop()  # removes the temp dir made by __init__
            raise
        began = time.monotonic()
        atexit.register(self.stop)  # safety net if the owner never calls stop(); stop() is idempotent
        self._make_dirs()
        self._write_munge_key()
        self._write_config()
        try:
            self._launch(
                "munged",
                [
                    "munged",
                    f"--key-file={self.root / 'munge' / 'munge.key'}",
                    f"--socket={self.munge_socket}",
                    f"--pid-file={self._pid_files['munged']}",
                    f"--log-file={self.root / 'log' / 'munged.log'}",
                    f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                ],
            )
            self._launch("slurmctld", ["slurmctld", "-c", "-f", str(self.conf_path)])
            self._launch("slurmd", ["slurmd", "-N", self.node_name, "-f", str(self.conf_path)])
            self.wait_idle(timeout=timeout)
        except BaseException as error:
            logs = self.log_tails()
            self.stop()
            if isinstance(error, Exception):
                raise SlurmError(f"SLURM test cluster failed to start: {error}\n{logs}") from error
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Cancel our jobs, terminate the daemons we launched (reverse order), delete the temp dir."""
        if "slurmctld" in self._started:
            try:
                self._cancel_all_jobs()
            except (subprocess.SubprocessError, OSError):
                pass  # a hung controller must not keep us from killing the daemons
        for name in reversed(self._started):
            self._terminate(name)
        self._started.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until sinfo reports our node idle (slurmd registered, nothing running)."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            done = self.run(["sinfo", "-h", "-N", "-n", self.node_name, "-o", "%T"], check=False)
            state = done.stdout.strip()
            if done.returncode == 0 and state == "idle":
                return
            self._check_daemons_alive()
            time.sleep(0.25)
        raise SlurmError(f"node {self.node_name} not idle after {timeout:.0f}s (sinfo says {state!r})")

    # ---------------------------------------------------------------- jobs
    def run(
        self, command: Sequence[str], check: bool = True, **kwargs: object
    ) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        kwargs.setdefault("env", self.env)
        done = subprocess.run(
            list(command), check=False, capture_output=True, text=True, timeout=60, **kwargs
        )
        if check and done.returncode != 0:
            raise SlurmError(f"`{' '.join(command)}` failed (rc={done.returncode}): {done.stderr.strip()}")
        return done

    def sbatch(
        self,
        script: str | os.PathLike[str],
        *script_args: str,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> str:
        """Submit ``script`` (sbatch ``options`` before it, ``script_args`` after); return the job id.

        ``env`` adds variables to the submitting environment, which the job inherits (--export=ALL).
        """
        job_env = {**self.env, **(env or {})}
        command = [
            "sbatch",
            "--parsable",
            f"--partition={self.partition}",
            *options,
            str(script),
            *script_args,
        ]
        done = self.run(command, env=job_env, cwd=cwd)
        return done.stdout.strip().split(";")[0]

    def job_records(self, job_id: str) -> list[dict[str, str]]:
        """`scontrol show job` fields, one dict per job (per task for an array); [] once purged."""
        done = self.run(["scontrol", "-o", "show", "job", job_id], check=False)
        if done.returncode != 0:
            return []
        return [parse_record(line) for line in done.stdout.splitlines() if line.strip()]

    def job_state(self, job_id: str) -> str:
        """Current state of one job (e.g. PENDING, RUNNING, COMPLETED); array ids: use array_states."""
        records = self.job_records(job_id)
        if records:
            return records[0]["JobState"]
        return self._completed_state(job_id) or "UNKNOWN"

    def array_states(self, array_job_id: str) -> dict[int, str]:
        """State of every task of an array job, keyed by SLURM_ARRAY_TASK_ID."""
        states: dict[int, str] = {}
        for record in self.job_records(array_job_id):
            task = record.get("ArrayTaskId", "")
            if task.isdigit():
                states[int(task)] = record["JobState"]
            else:  # still-pending tasks are folded into one record, e.g. ArrayTaskId=1-3
                states[-1] = record["JobState"]
        return states

    def restart_count(self, job_id: str) -> int:
        records = self.job_records(job_id)
        return int(records[0].get("Restarts", "0")) if records else 0

    def wait_job(self, job_id: str, timeout: float = 60.0) -> str:
        """Poll until ``job_id`` reaches a terminal state and return it (e.g. COMPLETED)."""
        deadline = time.monotonic() + timeout
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in TERMINAL_STATES:
                return state
            time.sleep(0.25)
        raise SlurmError(f"job {job_id} still {state} after {timeout:.0f}s")

    def wait_array(self, array_job_id: str, timeout: float = 60.0) -> dict[int, str]:
        """Poll until every task of an array job is terminal; return {task id: final state}."""
        deadline = time.monotonic() + timeout
        states: dict[int, str] = {}
        while time.monotonic() < deadline:
            states = self.array_states(array_job_id)
            if states and -1 not in states and set(states.values()) <= TERMINAL_STATES:
                return states
            time.sleep(0.25)
        raise SlurmError(f"array job {array_job_id} not finished after {timeout:.0f}s: {states}")

    def wait_state(self, job_id: str, wanted: str, timeout: float = 60.0) -> None:
        """Poll until ``job_id`` is in state ``wanted`` (e.g. RUNNING)."""
        deadline = time.monotonic() + timeout
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state == wanted:
                return
            if state in TERMINAL_STATES:
                break
            time.sleep(0.1)
        raise SlurmError(f"job {job_id} is {state}, never reached {wanted} within {timeout:.0f}s")

    def requeue(self, job_id: str) -> None:
        """`scontrol requeue`: kill the running job and put it back in the queue (Restarts += 1)."""
        self.run(["scontrol", "requeue", job_id])

    # ---------------------------------------------------------------- diagnostics
    def log_tails(self, lines: int = 20) -> str:
        parts = []
        for log in sorted((self.root / "log").glob("*.log")):
            parts.append(f"--- {log.name}\n{_tail(log.read_text(errors='replace'), lines)}")
        return "\n".join(parts)

    # ---------------------------------------------------------------- internals
    def _make_dirs(self) -> None:
        # munged insists that its socket dir is traversable by all and its key dir is private.
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        for sub, mode in (
            ("munge", 0o700),
            ("run", 0o755),
            ("log", 0o755),
            ("state", 0o700),
            ("spool", 0o755),
        ):
            (self.root / sub).mkdir(exist_ok=True)
            (self.root / sub).chmod(mode)

    def _write_munge_key(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o400)

    def _write_config(self) -> None:
        cpus = len(os.sched_getaffinity(0))
        memory = max(256, int(machine_memory_mb() * 0.9))
        (self.root / "plugstack.conf").write_text("")
        settings = {
            "ClusterName": f"ifpo{secrets.token_hex(4)}",
            "SlurmctldHost": f"{self.hostname}(127.0.0.1)",
            "SlurmctldPort": free_port(),
            "SlurmdPort": free_port(),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            # Private munged: clients and daemons find it through AuthInfo, never /run/munge.
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={self.munge_socket},cred_expire={CRED_EXPIRE_S}",
            "StateSaveLocation": self.root / "state",
            "SlurmdSpoolDir": self.root / "spool",
            "SlurmctldPidFile": self._pid_files["slurmctld"],
            "SlurmdPidFile": self._pid_files["slurmd"],
            "SlurmctldLogFile": self.root / "log" / "slurmctld.log",
            "SlurmdLogFile": self.root / "log" / "slurmd.log",
            "PlugStackConfig": self.root / "plugstack.conf",
            # No cgroups in CI containers: track processes by parent pid, no task binding.
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            # No accounting DB, so final states of purged jobs come from this text log.
            "JobCompType": "jobcomp/filetxt",
            "JobCompLoc": self.jobcomp_log,
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU",
            "SchedulerType": "sched/backfill",
            "SchedulerParameters": "sched_interval=1,bf_interval=1,batch_sched_delay=0",
            "MpiDefault": "none",
            "MailProg": "/bin/true",
            "ReturnToService": 2,
            # Fast tests: batch jobs are requeueable, killed jobs get 2 s before SIGKILL,
            # finished jobs stay visible to scontrol for 60 s (then jobcomp.txt has them).
            "JobRequeue": 1,
            "KillWait": 2,
            "MinJobAge": 60,
            "SlurmdTimeout": 30,
            "InactiveLimit": 0,
            "SlurmctldDebug": "info",
            "SlurmdDebug": "info",
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        lines.append(
            f"NodeName={self.node_name} NodeHostname={self.hostname} NodeAddr=127.0.0.1 "
            f"CPUs={cpus} RealMemory={memory} State=UNKNOWN"
        )
        lines.append(
            f"PartitionName={self.partition} Nodes={self.node_name} Default=YES MaxTime=INFINITE State=UP"
        )
        self.conf_path.write_text("\n".join(lines) + "\n")

    def _launch(self, name: str, command: list[str]) -> None:
        """Start a self-daemonizing daemon and wait for its pid file."""
        done = subprocess.run(command, check=False, env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise SlurmError(f"{name} exited rc={done.returncode}: {(done.stdout + done.stderr).strip()}")
        self._started.append(name)
        deadline = time.monotonic() + 15
        while self.daemon_pid(name) is None:
            if time.monotonic() > deadline:
                raise SlurmError(f"{name} wrote no pid file {self._pid_files[name]}")
            time.sleep(0.05)

    def daemon_pid(self, name: str) -> int | None:
        try:
            text = self._pid_files[name].read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def _check_daemons_alive(self) -> None:
        for name in self._started:
            pid = self.daemon_pid(name)
            if pid is None or not pid_alive(pid):
                raise SlurmError(f"{name} died during startup")

    def _terminate(self, name: str, timeout: float = 15.0) -> None:
        pid = self.daemon_pid(name)
        if pid is None or not pid_alive(pid):
            return
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.05)
        except ProcessLookupError:
            pass  # exited between the check and the signal

    def _cancel_all_jobs(self) -> None:
        """Kill leftover jobs first so no slurmstepd outlives the slurmd that spawned it."""
        self.run(["scancel", "--full", f"--partition={self.partition}"], check=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            done = self.run(["squeue", "-h", "-o", "%i"], check=False)
            if done.returncode != 0 or not done.stdout.strip():
                return
            time.sleep(0.25)

    def _completed_state(self, job_id: str) -> str | None:
        """Last state jobcomp/filetxt logged for a job that scontrol has already purged."""
        if not self.jobcomp_log.exists():
            return None
        pattern = re.compile(rf"^JobId={re.escape(job_id)}\s.*?\bJobState=(\S+)", re.MULTILINE)
        states = pattern.findall(self.jobcomp_log.read_text(errors="replace"))
        return states[-1] if states else None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
