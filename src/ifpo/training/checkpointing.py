"""Lightning's ModelCheckpoint, writing atomically and cleaning up after kills.

Three changes to the stock callback, each for a failure seen on a cluster:
- every save goes through ifpo.training.checkpoint_files.atomic_save (temporary name, renamed
  once all ranks wrote), so a kill mid-save never leaves a half-written `last.ckpt` or top-k file;
- with `save_last`, the final step is always saved when training ends (the stock callback only
  saves last when nothing at all was saved), and a completed `last.ckpt` makes older
  `hpc_ckpt_*` preemption checkpoints and leftover `.partial` files obsolete: they are deleted;
- at the start of training, top-k files of this callback that its restored state no longer
  lists (written after the checkpoint the run resumed from, then orphaned by the kill) are
  deleted, so `save_top_k` holds across restarts.

In conf/callbacks/default.yaml exactly one instance (`resume_checkpoint`) has `save_last`, and
`enable_version_counter` is off: one `last.ckpt` per run, never `last-v1.ckpt`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from ifpo.training.checkpoint_files import PARTIAL_SUFFIX, atomic_save, prune

log = logging.getLogger(__name__)


class AtomicModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint with atomic saves, a final `last.ckpt` and pruning (see module doc)."""

    def __init__(self, *args: Any, run_dir: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(*args, **kwargs)
        self.run_dir = Path(run_dir) if run_dir else None

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        path = atomic_save(trainer, filepath, weights_only=self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            if path.name == self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION and self.run_dir is not None:
                prune(self.run_dir, keep=path, checkpoint_dir=path.parent)
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if trainer.is_global_zero and self.save_top_k != 0 and self.dirpath:
            self.prune_orphans()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _own_files(self) -> list[Path]:
        """Top-k files this callback's filename template could have written in its folder."""
        template = self.filename or "*"
        glob = re.sub(r"\{[^}]*\}", "*", template) + self.FILE_EXTENSION
        last = self.CHECKPOINT_NAME_LAST
        return [
            p for p in Path(self.dirpath).glob(glob)
            if not p.name.startswith(last) and not p.name.endswith(PARTIAL_SUFFIX)
        ]  # fmt: skip

    def prune_orphans(self) -> list[Path]:
        """Delete own top-k files the (restored) state does not list; forget listed files that are gone."""
        self.best_k_models = {k: v for k, v in self.best_k_models.items() if Path(k).exists()}
        kept = {Path(k).resolve() for k in self.best_k_models}
        orphans = [p for p in self._own_files() if p.resolve() not in kept]
        for path in orphans:
            self._fs.rm(str(path), recursive=True)
        if orphans:
            log.info("checkpoints: removed orphaned top-k %s", ", ".join(p.name for p in orphans))
        return orphans
