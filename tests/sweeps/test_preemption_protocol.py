"""Units of the preemption protocol: flag-only handlers, agreement over ranks, one atomic save,
complete-checkpoint resume choice (files and DeepSpeed directories), pruning, one last.ckpt."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.demos.boring_classes import BoringModel

from ifpo.training import preemption
from ifpo.training.checkpoint_files import MARKER, atomic_save, complete_newest_first, is_complete, prune
from ifpo.training.checkpointing import AtomicModelCheckpoint
from ifpo.training.preemption import Preempted, PreemptionCheckpoint, PreemptionFlag, agree
from ifpo.training.resume import resolve_ckpt_path


@pytest.fixture(autouse=True)
def restore_signals():
    before = {s: signal.getsignal(s) for s in preemption.HANDLED}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


# ------------------------------------------------------------------ the flag
def test_handlers_only_set_a_flag_first_signal_wins():
    flag = PreemptionFlag()
    flag.install()
    assert all(signal.getsignal(s) == flag.handle for s in preemption.HANDLED)
    os.kill(os.getpid(), signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGTERM)  # e.g. the SIGTERM of the requeue that USR2 asked for
    assert flag.signum == signal.SIGUSR2


def test_first_ctrl_c_flags_second_aborts_at_once():
    flag = PreemptionFlag()
    flag.install()
    os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: training goes on to the boundary
    assert flag.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


def _agree_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    flag = PreemptionFlag()
    if rank == 1:  # only one rank saw the signal (e.g. `kill` of one process, or it came late)
        flag.signum = int(signal.SIGTERM)
    agreed = [agree(flag)]
    flag_none = PreemptionFlag()
    agreed.append(agree(flag_none))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(agreed))
    dist.destroy_process_group()


def test_all_ranks_agree_when_one_rank_was_signalled(tmp_path):
    mp.start_processes(
        _agree_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="fork"
    )
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert results == [[int(signal.SIGTERM), 0]] * 2


# ------------------------------------------------------------------ in a real (tiny) trainer
class _SignalAt(pl.Callback):
    """Send a signal to this process at the end of a given batch (what SLURM or a user would do)."""

    def __init__(self, batch: int, *signums: int, at_step: int | None = None) -> None:
        self.batch, self.signums, self.at_step = batch, signums, at_step
        self.handlers_during_fit: dict[int, object] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.handlers_during_fit = {s: signal.getsignal(s) for s in preemption.HANDLED}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = trainer.global_step == self.at_step if self.at_step is not None else batch_idx == self.batch
        if now:
            self.at_step = self.batch = -1  # once
            for signum in self.signums:
                os.kill(os.getpid(), signum)


def _trainer(tmp_path: Path, *callbacks: pl.Callback, **kwargs) -> pl.Trainer:
    kwargs = {
        "max_steps": 8,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
        **kwargs,
    }
    return pl.Trainer(callbacks=list(callbacks), **kwargs)


def test_sigterm_saves_once_at_the_boundary_and_stops_with_143(tmp_path):
    stop = PreemptionCheckpoint(dirpath=str(tmp_path))
    signals = _SignalAt(2, signal.SIGTERM, signal.SIGTERM)  # two SIGTERMs: still one checkpoint
    trainer = _trainer(tmp_path, stop, signals)
    with pytest.raises(Preempted) as stopped:
        trainer.fit(BoringModel())
    assert stopped.value.code == 128 + signal.SIGTERM
    assert [p.name for p in tmp_path.iterdir() if "ckpt" in p.name] == ["hpc_ckpt_1.ckpt"]
    assert torch.load(tmp_path / "hpc_ckpt_1.ckpt", weights_only=False)["global_step"] == 3  # batch 2 done
    # During fit the flag was the only handler; Lightning's own (which saves/broadcasts inside the
    # handler) was never installed; afterwards the previous handlers are back.
    assert all(h == stop.flag.handle for h in signals.handlers_during_fit.values())
    assert signal.getsignal(signal.SIGTERM) != stop.flag.handle
    # A second stop at the same step (the requeue's SIGTERM after USR2) writes nothing new.
    assert stop.save(trainer, signal.SIGTERM) is None
    assert len(list(tmp_path.glob("hpc_ckpt_*"))) == 1


def test_ctrl_c_checkpoints_like_sigterm_and_exits_130(tmp_path):
    trainer = _trainer(tmp_path, PreemptionCheckpoint(dirpath=str(tmp_path)), _SignalAt(1, signal.SIGINT))
    with pytest.raises(Preempted) as stopped:
        trainer.fit(BoringModel())
    assert stopped.value.code == 130
    assert is_complete(tmp_path / "hpc_ckpt_1.ckpt")


def test_second_ctrl_c_aborts_without_a_checkpoint(tmp_path):
    trainer = _trainer(
        tmp_path, PreemptionCheckpoint(dirpath=str(tmp_path)), _SignalAt(1, signal.SIGINT, signal.SIGINT)
    )
    with pytest.raises(SystemExit) as aborted:  # Lightning's KeyboardInterrupt path; train.py maps it to 130
        trainer.fit(BoringModel())
    assert not isinstance(aborted.value, Preempted)
    assert preemption.aborted_by_second_ctrl_c(trainer)  # what train.py turns into exit 130
    assert not list(tmp_path.glob("hpc_ckpt_*"))


def test_signal_mid_accumulation_waits_for_the_optimizer_step(tmp_path):
    trainer = _trainer(
        tmp_path,
        PreemptionCheckpoint(dirpath=str(tmp_path)),
        _SignalAt(2, signal.SIGUSR2),
        accumulate_grad_batches=4,
    )
    with pytest.raises(Preempted) as stopped:
        trainer.fit(BoringModel())
    assert stopped.value.code == 128 + signal.SIGUSR2  # outside SLURM: checkpoint, no requeue
    state = torch.load(tmp_path / "hpc_ckpt_1.ckpt", weights_only=False)
    assert state["global_step"] == 1  # batches 0-3 = optimizer step 1, not a partial step
    assert (
        state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == 3
    )  # counted at batch 3


def test_resumed_step_is_not_saved_again_and_the_new_save_prunes_the_old(tmp_path):
    first = _trainer(tmp_path, PreemptionCheckpoint(dirpath=str(tmp_path)), _SignalAt(1, signal.SIGTERM))
    with pytest.raises(Preempted):
        first.fit(BoringModel())
    again = PreemptionCheckpoint(dirpath=str(tmp_path))
    second = _trainer(tmp_path, again, _SignalAt(-1, signal.SIGTERM, at_step=3))
    with pytest.raises(Preempted) as stopped:
        second.fit(BoringModel(), ckpt_path=str(tmp_path / "hpc_ckpt_1.ckpt"))
    assert 2 in again.saved_steps  # the resumed-from step counted as saved
    assert sorted(p.name for p in tmp_path.glob("hpc_ckpt_*")) == ["hpc_ckpt_2.ckpt"]  # the older one pruned
    assert stopped.value.checkpoint == tmp_path / "hpc_ckpt_2.ckpt"
    assert torch.load(stopped.value.checkpoint, weights_only=False)["global_step"] == 4


def test_under_slurm_only_the_flag_handles_usr2_and_lightning_does_not_requeue(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    monkeypatch.setenv("SLURM_JOB_ID", "123")

    class FakeSubmitit:
        def checkpoint_and_try_requeue(self, signum, frame):  # pragma: no cover - never delivered
            raise AssertionError

    FakeSubmitit.__module__ = "submitit.core.job_environment"
    signal.signal(signal.SIGUSR2, FakeSubmitit().checkpoint_and_try_requeue)
    plugins = preemption.trainer_plugins()
    assert len(plugins) == 1 and isinstance(plugins[0], SLURMEnvironment) and not plugins[0].auto_requeue
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL  # submitit's handler removed
    requeued = []
    monkeypatch.setattr(preemption, "requeue_slurm_job", lambda: requeued.append(True) or 0)
    stop, signals = PreemptionCheckpoint(dirpath=str(tmp_path)), _SignalAt(1, signal.SIGUSR2)
    trainer = _trainer(tmp_path, stop, signals, plugins=plugins)
    with pytest.raises(Preempted):
        trainer.fit(BoringModel())
    assert signals.handlers_during_fit[signal.SIGUSR2] == stop.flag.handle
    assert requeued == [True] and is_complete(tmp_path / "hpc_ckpt_1.ckpt")


def test_lightning_does_not_pick_hpc_files_on_its_own_under_slurm(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"half-writ")
    trainer = _trainer(tmp_path, max_steps=1)
    assert trainer._checkpoint_connector._hpc_resume_path is not None
    preemption.own_the_resume_choice(trainer)
    assert trainer._checkpoint_connector._hpc_resume_path is None
    trainer.fit(BoringModel())  # ckpt_path=None really means: start fresh
    assert trainer.global_step == 1


# ------------------------------------------------------------------ atomic files
def _ckpt(path: Path, step: int = 1, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step}, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _deepspeed_dir(path: Path, ranks: int = 2, drop: str | None = None, marker: bool = False) -> Path:
    tag = path / "checkpoint"
    tag.mkdir(parents=True)
    (path / "latest").write_text("checkpoint")
    for rank in range(ranks):
        for kind in ("model", "optim"):
            name = f"zero_pp_rank_{rank}_mp_rank_00_{kind}_states.pt"
            if name != drop:
                torch.save({"rank": rank}, tag / name)
    if marker:
        (path / MARKER).write_text(json.dumps({"global_step": 3}))
    return path


class _StubTrainer(SimpleNamespace):
    """Just what atomic_save touches; save_checkpoint is the test's writer."""

    def __init__(self, writer) -> None:
        super().__init__(
            is_global_zero=True,
            global_step=7,
            world_size=2,
            strategy=SimpleNamespace(barrier=lambda *a: None),
        )
        self.save_checkpoint = writer


def test_a_killed_save_leaves_only_a_partial_that_resume_skips_and_the_next_save_removes(tmp_path):
    good = _ckpt(tmp_path / "checkpoints" / "last.ckpt", step=3)

    def killed(path, weights_only=False):
        Path(path).write_bytes(b"PK\x03\x04 truncated")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_save(_StubTrainer(killed), tmp_path / "hpc_ckpt_1.ckpt")
    assert not (tmp_path / "hpc_ckpt_1.ckpt").exists() and (tmp_path / "hpc_ckpt_1.ckpt.partial").exists()
    assert resolve_ckpt_path(None, "auto", tmp_path) == str(good)
    path = atomic_save(
        _StubTrainer(lambda p, weights_only=False: torch.save({"global_step": 7}, p)),
        tmp_path / "hpc_ckpt_1.ckpt",
    )
    assert is_complete(path) and not (tmp_path / "hpc_ckpt_1.ckpt.partial").exists()


def test_a_directory_checkpoint_replaces_the_old_one_and_gets_a_marker(tmp_path):
    final = _deepspeed_dir(tmp_path / "last.ckpt", ranks=1)
    atomic_save(_StubTrainer(lambda p, weights_only=False: _deepspeed_dir(Path(p), ranks=2)), final)
    assert json.loads((final / MARKER).read_text())["global_step"] == 7
    assert (final / "checkpoint" / "zero_pp_rank_1_mp_rank_00_optim_states.pt").exists()
    assert not list(tmp_path.glob("*.old")) and not list(tmp_path.glob("*.partial"))


def test_completeness_of_files_and_deepspeed_directories(tmp_path):
    assert is_complete(_ckpt(tmp_path / "a.ckpt"))
    truncated = tmp_path / "b.ckpt"
    truncated.write_bytes((tmp_path / "a.ckpt").read_bytes()[:-30])
    assert not is_complete(truncated)
    assert is_complete(_deepspeed_dir(tmp_path / "ds_ok.ckpt"))
    assert is_complete(_deepspeed_dir(tmp_path / "ds_marker.ckpt", marker=True))
    assert not is_complete(
        _deepspeed_dir(tmp_path / "ds_no_rank1.ckpt", drop="zero_pp_rank_1_mp_rank_00_optim_states.pt")
    )
    no_latest = _deepspeed_dir(tmp_path / "ds_no_latest.ckpt")
    (no_latest / "latest").unlink()  # DeepSpeed writes `latest` after the shards
    assert not is_complete(no_latest)
    assert not is_complete(_deepspeed_dir(tmp_path / "ds.ckpt.partial", marker=True))


def test_auto_resume_takes_the_newest_complete_checkpoint_file_or_directory(tmp_path, caplog):
    now = time.time()
    _ckpt(tmp_path / "checkpoints" / "last.ckpt", mtime=now - 30)
    directory = _deepspeed_dir(tmp_path / "hpc_ckpt_1.ckpt")
    os.utime(directory / "latest", (now - 20, now - 20))
    half = _deepspeed_dir(tmp_path / "hpc_ckpt_2.ckpt", drop="zero_pp_rank_0_mp_rank_00_model_states.pt")
    os.utime(half / "latest", (now, now))
    with caplog.at_level(logging.INFO, logger="ifpo.training.resume"):
        chosen = resolve_ckpt_path(None, "auto", tmp_path)
    assert chosen == str(directory)
    assert f"skipping {half}: incomplete" in caplog.text
    assert f"continuing from {directory} (DeepSpeed directory)" in caplog.text
    assert resolve_ckpt_path(None, "force", tmp_path) == str(directory)
    assert resolve_ckpt_path(None, "never", tmp_path) is None


def test_explicit_ckpt_path_accepts_directories_and_run_folders_and_refuses_half_written(tmp_path):
    directory = _deepspeed_dir(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert resolve_ckpt_path(str(directory), "auto", tmp_path) == str(directory)  # was FileNotFoundError
    assert resolve_ckpt_path(str(tmp_path / "run"), "never", tmp_path) == str(directory)
    half = _deepspeed_dir(tmp_path / "half.ckpt", drop="zero_pp_rank_1_mp_rank_00_model_states.pt")
    with pytest.raises(ValueError, match="half.ckpt: incomplete checkpoint"):
        resolve_ckpt_path(str(half), "auto", tmp_path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint file or directory"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), "auto", tmp_path)


def test_a_kill_between_the_two_renames_of_a_swap_still_resumes(tmp_path):
    old = _deepspeed_dir(tmp_path / "checkpoints" / "last.ckpt.old", marker=True)
    complete, broken = complete_newest_first([old])
    assert complete == [old] and not broken
    assert resolve_ckpt_path(None, "auto", tmp_path) == str(old)


def test_prune_keeps_the_newest_complete_and_drops_old_hpc_partials(tmp_path):
    keep = _ckpt(tmp_path / "checkpoints" / "last.ckpt")
    old_hpc = _ckpt(tmp_path / "hpc_ckpt_1.ckpt")
    old_dir = _deepspeed_dir(tmp_path / "hpc_ckpt_2.ckpt")
    partial = _ckpt(tmp_path / "checkpoints" / "last.ckpt.partial")
    removed = prune(tmp_path, keep=keep)
    assert set(removed) == {old_hpc, old_dir, partial}
    assert keep.exists() and not old_dir.exists()


def test_orphaned_top_k_files_are_removed_and_listed_ones_kept(tmp_path):
    callback = AtomicModelCheckpoint(
        dirpath=str(tmp_path), filename="step{step:06d}", monitor="val", save_top_k=1
    )
    callback._fs = __import__("fsspec").filesystem("file")
    listed = _ckpt(tmp_path / "step000002.ckpt")
    orphan = _ckpt(tmp_path / "step000003.ckpt")  # written after the resumed checkpoint, then killed
    orphan_dir = _deepspeed_dir(tmp_path / "step000004.ckpt")
    last = _ckpt(tmp_path / "last.ckpt")
    callback.best_k_models = {
        str(listed): torch.tensor(1.0),
        str(tmp_path / "step000001.ckpt"): torch.tensor(0.5),
    }
    assert set(callback.prune_orphans()) == {orphan, orphan_dir}
    assert listed.exists() and last.exists()
    assert list(callback.best_k_models) == [str(listed)]  # a listed file that is gone is forgotten


# ------------------------------------------------------------------ the lead time: one config value
@pytest.mark.parametrize(
    "overrides,lead",
    [
        ([], 300),
        (["experiment=rpo_8b"], 600),
        (["experiment=dpo_70b"], 1200),
        (["experiment=iopo_70b_lora"], 1200),
        (["experiment=rpo_70b", "preemption.signal_lead_s=900"], 900),
    ],
)
def test_submitit_usr2_lead_time_is_the_config_value(overrides, lead):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tests.hydra_helpers import ROOT

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    assert cfg.preemption.signal_lead_s == lead
    assert cfg.hydra.launcher.signal_delay_s == lead  # what submitit turns into --signal=USR2@<lead>
