"""One signal story for SLURM preemption, time limits and `scontrol requeue`.

SLURM (our sbatch templates and the submitit launcher alike, `--signal=USR2@90`) sends SIGUSR2
before a time limit. Lightning's `SLURMEnvironment` would listen on SIGUSR1 and submitit installs
its own USR2 handler (which requeues *without* a Lightning checkpoint), and Lightning skips its
handler when one is already installed. We keep exactly one: Lightning's, moved to SIGUSR2
(`SLURMEnvironment(requeue_signal=SIGUSR2)`), after removing submitit's. On USR2 Lightning saves
`hpc_ckpt_<n>.ckpt` into the run folder and requeues the job; on SIGTERM (preemption, requeue,
scancel) Lightning stops at the end of the current batch and `SaveOnSigterm` writes the same kind
of checkpoint at that clean batch boundary. `resume: auto` picks up either on the restart.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

REQUEUE_SIGNAL = signal.SIGUSR2


def under_slurm() -> bool:
    """True inside a SLURM job step that Lightning would treat as a managed cluster."""
    return SLURMEnvironment.detect()


def release_submitit_handler(signum: int = REQUEUE_SIGNAL) -> bool:
    """Uninstall submitit's checkpoint-and-requeue handler so Lightning's is the only one.

    submitit's handler calls the launcher's `checkpoint()`, which resubmits the job from its start
    with no model checkpoint; Lightning's saves the training state first. Returns True if removed.
    """
    handler = signal.getsignal(signum)
    owner = getattr(getattr(handler, "__self__", None), "__class__", None)
    if owner is not None and owner.__module__.startswith("submitit"):
        signal.signal(signum, signal.SIG_DFL)
        log.info("preemption: submitit's %s handler removed; Lightning's requeue handler takes it", signal.Signals(signum).name)
        return True
    return False


def trainer_plugins(auto_requeue: bool = True) -> list[Any]:
    """Lightning plugins for this process: under SLURM, requeue on SIGUSR2 (the templates' signal)."""
    if not under_slurm():
        return []
    release_submitit_handler()
    return [SLURMEnvironment(auto_requeue=auto_requeue, requeue_signal=REQUEUE_SIGNAL)]


class SaveOnSigterm(pl.Callback):
    """Write `hpc_ckpt_<n>.ckpt` into the run folder when training stops on SIGTERM.

    Lightning turns SIGTERM into `SIGTERMException` at the end of the running batch, so the saved
    state (weights, optimizer, scheduler, loop counters, data position) is a batch boundary and the
    resumed run continues exactly where this one stopped.
    """

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(path)
        log.warning("SIGTERM at step %d: saved %s (resume=auto continues from it)", trainer.global_step, path)


def exit_code_after_sigterm() -> int:
    """128 + SIGTERM, what a shell reports for a process ended by that signal."""
    return 128 + int(signal.SIGTERM)


def describe_environment() -> str:
    """One line for the log: where requeue/preemption signals go in this process."""
    if not under_slurm():
        return "preemption: not under SLURM; SIGTERM saves hpc_ckpt_<n>.ckpt and exits"
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get("SLURM_JOB_ID")
    return f"preemption: SLURM job {job} restart {os.environ.get('SLURM_RESTART_COUNT', '0')}; SIGUSR2 -> checkpoint + requeue"
