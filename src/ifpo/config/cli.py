"""Command-line conveniences shared by the Hydra entry points."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import rootutils

# Groups that train.yaml lists as `group: null` in its defaults. Hydra refuses
# `+group=x` for such a group ("Multiple values for experiment") and wants `group=x`,
# while the documented, muscle-memory spelling is `+experiment=NAME`. Accept both.
OPTIONAL_GROUPS = ("experiment", "debug", "hparams_search")


def normalize_overrides(overrides: Sequence[str]) -> list[str]:
    """Rewrite `+experiment=x` (and other optional groups) to `experiment=x`."""
    out = []
    for arg in overrides:
        for group in OPTIONAL_GROUPS:
            if arg.startswith(f"+{group}="):
                arg = arg[1:]
        out.append(arg)
    return out


def normalize_argv() -> None:
    sys.argv[1:] = normalize_overrides(sys.argv[1:])


def set_project_root(entry_file: str | Path) -> Path:
    """Export IFPO_ROOT (the folder holding `.project-root`) before Hydra composes anything.

    conf/paths/default.yaml reads it with `${oc.env:IFPO_ROOT}`: an environment variable is the one
    root that resolves the same in a single run, a multirun's hydra.sweep.dir (resolved before
    HydraConfig exists), an Optuna trial and a submitit job (sbatch passes the environment on).
    A value the caller already set wins, so tests and wrappers can point runs elsewhere.
    """
    root = rootutils.find_root(entry_file, indicator=".project-root")
    os.environ.setdefault("IFPO_ROOT", str(root))
    return Path(os.environ["IFPO_ROOT"])
