"""Build preference data: `python build.py builder=rpo|dpo|iopo sampler=hf|file|synthetic key=value ...`.

See conf/build.yaml; rerunning the same command after a kill resumes where it stopped.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import ifpo.config  # noqa: F401  (registers the structured config schemas, e.g. model_schema)
from ifpo.config.cli import set_project_root
from ifpo.config.plain import entry_config


@hydra.main(version_base="1.3", config_path="conf", config_name="build")
def main(cfg: DictConfig) -> None:
    from ifpo.builders.cli import build

    build(entry_config(cfg))  # enums become their strings here, once


if __name__ == "__main__":
    set_project_root(__file__)
    main()
