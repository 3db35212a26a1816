"""What a researcher sees in the terminal: short metric names, no known-harmless noise.

Everything here is presentation: the logged metric names (CSV, W&B, metrics.json) are unchanged.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar

# Long logged names -> what the progress bar and the sweep table show (100 columns fit both).
SHORT_PARTS = {
    "rewards/accuracies": "acc", "rewards/margins": "margin", "rewards/chosen": "r_chosen",
    "rewards/rejected": "r_rejected", "rewards/target_margin": "target_margin",
    "logps/chosen": "logp_chosen", "logps/rejected": "logp_rejected",
}


def short_name(metric: str) -> str:
    """`val/rewards/accuracies` -> `val/acc`, `train/loss` -> `loss` (train is the default split)."""
    split, _, rest = metric.partition("/")
    if not rest:
        return metric
    rest = SHORT_PARTS.get(rest, rest)
    return rest if split == "train" else f"{split}/{rest}"


class ShortProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar with short metric names and without the logger version (`v_num`)."""

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return {short_name(k): v for k, v in metrics.items()}


class _DropMessages(logging.Filter):
    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


_LIGHTNING_TIP = _DropMessages("💡 Tip:")


def quiet_known_noise() -> None:
    """Filter warnings and log lines we know to be harmless, each for a stated reason.

    Called by the entry points before training; nothing else is silenced.
    """
    # The frozen reference model is put in eval mode on purpose (no dropout in the reference
    # log-probs); Lightning counts its modules and warns at the start of every fit.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode", category=UserWarning)
    # Lightning's own pytree helper calls a torch API that torch deprecated; nothing we call.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
    # Printed whenever an `srun` binary exists, e.g. on a login node; our sbatch templates and the
    # submitit launcher do start every rank with srun.
    warnings.filterwarnings(
        "ignore", message=r"The `srun` command is available on your system but is not used"
    )
    # An advertisement for a cloud logger, printed on every Trainer construction.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _LIGHTNING_TIP not in logger.filters:
            logger.addFilter(_LIGHTNING_TIP)
