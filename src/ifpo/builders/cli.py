"""Glue from the Hydra config (conf/build.yaml) to :func:`run_build`."""

from __future__ import annotations

from omegaconf import DictConfig

from ifpo.builders.runner import run_build
from ifpo.builders.stats import BuildStats
from ifpo.config.plain import to_plain
from ifpo.judge import JudgeClient, JudgeConfig
from ifpo.sampling import build_sampler


def build(cfg: DictConfig) -> BuildStats:
    """Sampler and (optional) judge from the config, then the resumable build."""
    sampler = build_sampler(cfg.sampler, model_cfg=cfg.get("model"))
    judge_cfg = cfg.get("judge")
    client = JudgeClient(JudgeConfig.from_mapping(to_plain(judge_cfg))) if judge_cfg else None
    try:
        return run_build(cfg.builder, sampler, client, seed=int(cfg.seed), sampler_cfg=cfg.sampler)
    finally:
        if client is not None:
            client.close()
