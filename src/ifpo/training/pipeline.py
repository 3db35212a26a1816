"""Compose the pieces a config names and run training: the body of `train.py`."""

from __future__ import annotations

import logging
from typing import Any

import hydra
import lightning.pytorch as pl
from omegaconf import DictConfig

from ifpo.data.datamodule import PreferenceDataModule
from ifpo.losses import get_loss_head
from ifpo.models.loading import load_tokenizer
from ifpo.training.config_tree import print_config_tree
from ifpo.training.module import PreferenceModule, _plain

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a callbacks/logger group (null entries skipped)."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def build(cfg: DictConfig) -> tuple[PreferenceModule, PreferenceDataModule, pl.Trainer]:
    """The module, data module and trainer a config describes (no training yet)."""
    pl.seed_everything(cfg.seed, workers=True)
    tokenizer = load_tokenizer(cfg.model)
    head = get_loss_head(**_plain(cfg.loss))
    datamodule = PreferenceDataModule(cfg.data, tokenizer, head)
    module = PreferenceModule(cfg.model, cfg.ref, cfg.loss, cfg.optim)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=instantiate_group(cfg.get("logger")) or False, callbacks=instantiate_group(cfg.get("callbacks"))
    )
    return module, datamodule, trainer


def train(cfg: DictConfig) -> dict[str, float]:
    """Train as configured; return the final metrics (what sweepers optimise)."""
    print_config_tree(cfg, cfg.paths.output_dir)
    module, datamodule, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
