"""Command-line conveniences shared by the Hydra entry points."""

from __future__ import annotations

import sys
from collections.abc import Sequence

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
