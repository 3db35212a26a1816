"""Compose the training config in-process, as `python train.py ...` would, for tests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import ifpo.config  # noqa: F401  (registers the schemas)
from ifpo.config.cli import normalize_overrides
from ifpo.config.plain import entry_config

ROOT = Path(__file__).resolve().parents[1]


def compose_config(
    name: str, overrides: Sequence[str] = (), output_dir: Path | None = None, data_dir: Path | None = None
) -> DictConfig:
    os.environ.setdefault("IFPO_ROOT", str(ROOT))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=name, overrides=normalize_overrides(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.log_dir = str(output_dir)
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
        del cfg["hydra"]
    return entry_config(cfg)  # what train.py / eval.py / build.py hand on
