"""Evaluate a policy on an instruction-following benchmark: `python eval.py +eval=NAME key=value ...`.

NAME is one of conf/eval/ (ifeval, ifbench, multi_if, synthetic, sysbench, cfbench, trace).
Results (examples.jsonl, summary.json, accuracy_by_kind.png) go to the Hydra run folder.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import ifpo.config  # noqa: F401  (registers the structured config schemas)
from ifpo.config.cli import set_project_root
from ifpo.config.plain import entry_config


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    from ifpo.eval.runner import evaluate

    result = evaluate(entry_config(cfg))  # enums become their strings here, once
    headline = next((v for v in result.metrics.values() if isinstance(v, float)), None)
    return headline


if __name__ == "__main__":
    set_project_root(__file__)
    main()
