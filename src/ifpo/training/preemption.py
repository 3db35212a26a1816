"""One protocol for preemption, time limits, `scontrol requeue` and Ctrl-C, safe with many ranks.

Signals only set a flag. SIGUSR2 (SLURM's warning `preemption.signal_lead_s` seconds before the
time limit: slurm/*.sbatch and hydra/launcher=slurm both read that value), SIGTERM (preemption,
requeue, scancel) and SIGINT (Ctrl-C) are all handled the same way: at the next optimizer-step
boundary every rank contributes its flag to one all-reduce, so all ranks agree on the same step
even when the signal reached them at different points of their step (or reached only one of
them); they then write ONE checkpoint together, atomically (`hpc_ckpt_<n>.ckpt` in the run folder,
a directory of shards under DeepSpeed; see ifpo.training.checkpoint_files), and stop with exit
code 128 + signal. After USR2 under SLURM rank 0 also runs `scontrol requeue` for the job. A
step that already has a checkpoint (the one just written, or the one this process resumed from)
is never written twice, so the SIGTERM that a requeue sends cannot start a second save. A second
Ctrl-C aborts at once, without a checkpoint.

Why not Lightning's handlers: its USR1/USR2 requeue handler saves a (collective) checkpoint
from inside the signal handler, on each rank at a different point of its step, and its SIGTERM
handler broadcasts from inside the handler; with NCCL either can hang. So this callback replaces
the trainer's signal connector during fit: Lightning installs no handler of its own, and the
SLURM environment is created with `auto_requeue=False`. submitit's USR2 handler (which would
resubmit without a model checkpoint) is removed when the trainer is built.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

from ifpo.training.checkpoint_files import atomic_save, describe, prune

log = logging.getLogger(__name__)

REQUEUE_SIGNAL = signal.SIGUSR2
HANDLED = (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)


class Preempted(SystemExit):
    """Training stopped on a signal after its checkpoint was written; exits 128 + signal."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        super().__init__(128 + int(signum))
        self.signum = int(signum)
        self.checkpoint = checkpoint


class PreemptionFlag:
    """What the signal handlers write and the step boundary reads. Handlers do nothing else."""

    def __init__(self) -> None:
        self.signum = 0
        self.interrupts = 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts > 1:  # the second Ctrl-C: stop now, no checkpoint
                raise KeyboardInterrupt
        if not self.signum:
            self.signum = int(signum)
        # os.write is async-signal-safe; logging from a handler can deadlock on its lock.
        name = signal.Signals(signum).name
        hint = "; Ctrl-C again aborts at once" if signum == signal.SIGINT else ""
        os.write(2, f"\n{name}: checkpointing at the next step boundary{hint}\n".encode())

    def install(self) -> dict[int, Any]:
        """Point USR2, TERM and INT at this flag (main thread only); return the previous handlers."""
        previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous
        for signum in HANDLED:
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self.handle)
        return previous


def agree(flag: PreemptionFlag, device: torch.device | str = "cpu") -> int:
    """The signal every rank acts on: the largest local flag over all ranks (0 = none).

    A collective: every rank must call it at the same step boundary. Outside torch.distributed it
    is just the local flag.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag.signum
    value = torch.tensor([flag.signum], dtype=torch.int64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return int(value.item())


class _FlagOnlySignals(_SignalConnector):
    """The trainer's signal connector with Lightning's handlers replaced by the flag."""

    def __init__(self, trainer: pl.Trainer, flag: PreemptionFlag) -> None:
        super().__init__(trainer)
        self.flag = flag

    def register_signal_handlers(self) -> None:
        self.received_sigterm = False
        self._original_handlers = self._get_current_signal_handlers()
        self.flag.install()


class PreemptionCheckpoint(pl.Callback):
    """Flag on signal; agree, save once atomically, stop at the next optimizer-step boundary.

    Args:
        dirpath: where `hpc_ckpt_<n>.ckpt` goes (the run folder: Lightning's name for it).
        checkpoint_dir: where `last.ckpt` lives, for pruning; default `<dirpath>/checkpoints`.
        requeue: after USR2 under SLURM, requeue the job (`scontrol requeue`) from rank 0.
    """

    def __init__(self, dirpath: str, checkpoint_dir: str | None = None, requeue: bool = True) -> None:
        self.dirpath = Path(dirpath)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else self.dirpath / "checkpoints"
        self.requeue = requeue
        self.flag = PreemptionFlag()
        self.saved_steps: set[int] = set()

    # -- wiring -------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Runs before Trainer._run registers its handlers: ours are the only ones during fit.
        if stage == "fit" and not isinstance(trainer._signal_connector, _FlagOnlySignals):
            trainer._signal_connector = _FlagOnlySignals(trainer, self.flag)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path:  # the step this process resumed at already has a checkpoint
            self.saved_steps.add(trainer.global_step)

    # -- the step boundary --------------------------------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.fit_loop.epoch_loop._should_accumulate():
            return  # mid-accumulation: gradients of the partial step would be lost
        signum = agree(self.flag, trainer.strategy.root_device)
        if not signum:
            return
        path = self.save(trainer, signum)
        if signum == REQUEUE_SIGNAL and self.requeue and trainer.is_global_zero:
            requeue_slurm_job()
        raise Preempted(signum, path)

    def save(self, trainer: pl.Trainer, signum: int) -> Path | None:
        """The one checkpoint for this stop, unless this step already has one."""
        step = trainer.global_step
        name = signal.Signals(signum).name
        if step in self.saved_steps:
            log.warning("%s at step %d: this step is already checkpointed; not saving again", name, step)
            return None
        target = trainer._checkpoint_connector.hpc_save_path(str(self.dirpath))
        target = trainer.strategy.broadcast(target)
        path = atomic_save(trainer, target)
        self.saved_steps.add(step)
        if trainer.is_global_zero:
            prune(self.dirpath, keep=path, checkpoint_dir=self.checkpoint_dir)
        log.warning("%s at step %d: saved %s (%s); rerun the same command to resume", name, step, path,
        describe(path))
        return path


def aborted_by_second_ctrl_c(trainer: pl.Trainer) -> bool:
    """True when a second Ctrl-C ended fit (Lightning turns the KeyboardInterrupt into exit 1)."""
    return any(isinstance(cb, PreemptionCheckpoint) and cb.flag.interrupts > 1 for cb in trainer.callbacks)


def requeue_slurm_job() -> int:
    """`scontrol requeue` this job (array tasks as <array id>_<task id>); returns its exit code."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = (
        f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        if array_job
        else os.environ.get("SLURM_JOB_ID", "")
    )
    if not re.fullmatch(r"[0-9_]+", job):
        log.warning("USR2 outside a SLURM job (SLURM_JOB_ID=%r): checkpoint written, nothing requeued", job)
        return 1
    done = subprocess.run(["scontrol", "requeue", job], check=False, capture_output=True, text=True)
    if done.returncode == 0:
        log.warning("requeued SLURM job %s", job)
    else:
        log.error("scontrol requeue %s failed (rc=%d): %s", job, done.returncode, done.stderr.strip())
    return done.returncode


# ------------------------------------------------------------------ trainer construction
def under_slurm() -> bool:
    """True inside a SLURM job step that Lightning would treat as a managed cluster."""
    return SLURMEnvironment.detect()


def release_submitit_handler(signum: int = REQUEUE_SIGNAL) -> bool:
    """Uninstall submitit's checkpoint-and-requeue handler (it resubmits the job without a model
    checkpoint), so a USR2 during model loading does not requeue behind our back. True if removed."""
    handler = signal.getsignal(signum)
    owner = getattr(getattr(handler, "__self__", None), "__class__", None)
    if owner is not None and owner.__module__.startswith("submitit"):
        signal.signal(signum, signal.SIG_DFL)
        log.info("preemption: submitit's %s handler removed", signal.Signals(signum).name)
        return True
    return False


def trainer_plugins() -> list[Any]:
    """Lightning plugins for this process: under SLURM, its environment without auto-requeue
    (PreemptionCheckpoint requeues, after the agreed checkpoint)."""
    if not under_slurm():
        return []
    release_submitit_handler()
    return [SLURMEnvironment(auto_requeue=False, requeue_signal=REQUEUE_SIGNAL)]


def describe_environment(lead_s: int | None = None) -> str:
    """One line for the log: which signals checkpoint, and where requeues come from."""
    lead = f" ({lead_s} s before the time limit)" if lead_s else ""
    if not under_slurm():
        return "preemption: SIGTERM, SIGUSR2 or Ctrl-C -> one checkpoint at the next step boundary, then exit"
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get("SLURM_JOB_ID")
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    return (
        f"preemption: SLURM job {job} restart {restart}; SIGUSR2{lead} -> checkpoint + requeue, "
        "SIGTERM -> checkpoint"
    )


class _ConnectorWithoutHpcAutoResume:
    """Mixed into the trainer's checkpoint connector: Lightning would load `hpc_ckpt_<max>.ckpt`
    on its own under SLURM whenever `ckpt_path` is None, half-written or not, `resume=never` or not."""

    @property
    def _hpc_resume_path(self) -> None:
        return None


def own_the_resume_choice(trainer: pl.Trainer) -> None:
    """Leave the choice of checkpoint to ifpo.training.resume (complete checkpoints only)."""
    connector = trainer._checkpoint_connector
    if not isinstance(connector, _ConnectorWithoutHpcAutoResume):
        connector.__class__ = type(
            "CheckpointConnector", (_ConnectorWithoutHpcAutoResume, type(connector)), {}
        )
