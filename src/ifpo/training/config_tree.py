"""Save the composed config as a rich tree to the run folder; the terminal gets one line saying where."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

log = logging.getLogger(__name__)

PRINT_ORDER = ("model", "ref", "data", "loss", "optim", "trainer", "callbacks", "logger", "paths")


@rank_zero_only
def print_config_tree(
    cfg: DictConfig, output_dir: str | None = None, order: Sequence[str] = PRINT_ORDER
) -> None:
    tree = rich.tree.Tree("CONFIG", guide_style="dim")
    fields = [f for f in order if f in cfg] + [f for f in cfg if f not in order]
    for name in fields:
        branch = tree.add(str(name), guide_style="dim")
        value = cfg[name]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    if not output_dir:  # no run folder to write to: the terminal is the only place
        Console().print(tree)
        return
    path = Path(output_dir) / "config_tree.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        Console(file=f, width=120).print(tree)
    log.info("config: %s", path)  # `--cfg job` prints it before a run
