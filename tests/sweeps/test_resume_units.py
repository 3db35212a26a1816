"""Units of preemption-safe resume: checkpoint choice, the resumable data order, the signal wiring."""

from __future__ import annotations

import os
import signal
import time

import lightning.pytorch as pl
import pytest
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment

from ifpo.data.sampler import ResumableDataLoader, ResumableSampler
from ifpo.training import preemption
from ifpo.training.resume import resolve_ckpt_path


def _touch(path, mtime):
    """A complete (loadable) checkpoint file with the given modification time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": 1}, path)
    os.utime(path, (mtime, mtime))
    return path


def test_auto_resume_picks_the_newest_of_last_and_hpc(tmp_path):
    now = time.time()
    last = _touch(tmp_path / "checkpoints" / "last.ckpt", now - 10)
    hpc = _touch(tmp_path / "hpc_ckpt_1.ckpt", now)
    assert resolve_ckpt_path(None, "auto", tmp_path) == str(hpc)
    os.utime(last, (now + 5, now + 5))
    assert resolve_ckpt_path(None, "auto", tmp_path) == str(last)


def test_auto_resume_on_an_empty_folder_starts_fresh_and_never_ignores_checkpoints(tmp_path):
    assert resolve_ckpt_path(None, "auto", tmp_path) is None
    _touch(tmp_path / "checkpoints" / "last.ckpt", time.time())
    assert resolve_ckpt_path(None, "never", tmp_path) is None


def test_explicit_ckpt_path_wins_and_must_exist(tmp_path):
    explicit = _touch(tmp_path / "other.ckpt", time.time() - 100)
    _touch(tmp_path / "checkpoints" / "last.ckpt", time.time())
    assert resolve_ckpt_path(str(explicit), "auto", tmp_path) == str(explicit)
    with pytest.raises(FileNotFoundError, match="ckpt_path=.*nope.ckpt: no such checkpoint"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), "auto", tmp_path)
    with pytest.raises(ValueError, match=r"resume='sometimes': expected one of \['auto', 'never', 'force'\]"):
        resolve_ckpt_path(None, "sometimes", tmp_path)


def _loader(n=20, batch_size=3, seed=7):
    data = list(range(n))
    return ResumableDataLoader(
        data, batch_size=batch_size, sampler=ResumableSampler(data, seed=seed), drop_last=True
    )


def test_data_order_resumes_mid_epoch_on_the_next_batch():
    full = _loader()
    full.sampler.set_epoch(1)
    expected = [b.tolist() for b in full]
    first = _loader()
    first.sampler.set_epoch(1)
    iterator = iter(first)
    seen = [next(iterator).tolist() for _ in range(2)]
    state = first.state_dict()
    assert state["epoch"] == 1 and state["batches"] == 2
    resumed = _loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)
    rest = [b.tolist() for b in resumed]
    assert seen + rest == expected
    assert len(resumed) == len(full)  # Lightning still counts the full epoch
    resumed.sampler.set_epoch(2)  # the next epoch is whole again, and reshuffled
    nxt = [b.tolist() for b in resumed]
    assert len(nxt) == len(expected) and nxt != expected


def test_saved_position_for_another_epoch_is_not_applied():
    first = _loader()
    state = {**first.state_dict(), "batches": 3, "epoch": 0}
    resumed = _loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)  # Lightning already moved past the saved epoch
    assert len(list(resumed)) == len(first)


def test_order_depends_on_the_seed_and_sharding_splits_ranks():
    a, b = _loader(seed=1), _loader(seed=2)
    assert [x.tolist() for x in a] != [x.tolist() for x in b]
    data = list(range(12))
    shards = [list(ResumableSampler(data, num_replicas=2, rank=r, seed=0)) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == data


def test_lightning_keeps_the_loader_stateful():
    from lightning.fabric.utilities.types import _Stateful

    assert isinstance(_loader(), _Stateful)


class _FakeSubmititHandler:
    def checkpoint_and_try_requeue(self, signum, frame):  # pragma: no cover - never delivered
        raise AssertionError


_FakeSubmititHandler.__module__ = "submitit.core.job_environment"


@pytest.fixture
def restore_usr2():
    before = signal.getsignal(signal.SIGUSR2)
    yield
    signal.signal(signal.SIGUSR2, before)


def test_under_slurm_no_handler_but_the_flag_handles_usr2(monkeypatch, restore_usr2):
    """submitit's USR2 handler is removed and Lightning's requeue handler (which would save a
    collective checkpoint from inside the handler) is never installed: during fit only the flag of
    PreemptionCheckpoint handles USR2 (see test_preemption_protocol.py for the whole protocol)."""
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    signal.signal(signal.SIGUSR2, _FakeSubmititHandler().checkpoint_and_try_requeue)
    plugins = preemption.trainer_plugins()
    assert len(plugins) == 1 and isinstance(plugins[0], SLURMEnvironment)
    assert plugins[0].requeue_signal == signal.SIGUSR2 and not plugins[0].auto_requeue
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    callback = preemption.PreemptionCheckpoint(dirpath="unused")
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        plugins=plugins,
        logger=False,
        enable_checkpointing=False,
        callbacks=[callback],
    )
    callback.setup(trainer, None, "fit")
    trainer._signal_connector.register_signal_handlers()
    try:
        assert signal.getsignal(signal.SIGUSR2) == callback.flag.handle
        assert signal.getsignal(signal.SIGTERM) == callback.flag.handle
    finally:
        trainer._signal_connector.teardown()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_outside_slurm_no_plugin_and_foreign_handlers_stay(monkeypatch, restore_usr2):
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    assert preemption.trainer_plugins() == []
    own = lambda *a: None
    signal.signal(signal.SIGUSR2, own)
    assert not preemption.release_submitit_handler()
    assert signal.getsignal(signal.SIGUSR2) is own
