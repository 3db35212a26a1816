"""Train a policy with a preference (or SFT) head: `python train.py +experiment=NAME key=value ...`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import ifpo.config  # noqa: F401  (registers the structured config schemas)
from ifpo.config.cli import normalize_argv, set_project_root
from ifpo.config.plain import entry_config


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from ifpo.scale.plan_cli import plan_or_train
    from ifpo.training.terminal import quiet_known_noise

    quiet_known_noise()
    cfg = entry_config(cfg)  # enums become their strings here, once
    metrics = plan_or_train(cfg)
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    set_project_root(__file__)
    normalize_argv()
    main()
