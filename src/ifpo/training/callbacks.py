"""Callbacks of the training pipeline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table


class FinalSummary(pl.Callback):
    """At the end of fit: print the final metrics as a table and save them to metrics.json."""

    def __init__(self, output_dir: str, main_metric: str | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.main_metric = main_metric  # first row, bold: the number the run is judged by

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        metrics = {k: v for k, v in sorted(metrics.items()) if math.isfinite(v)}
        metrics["global_step"] = trainer.global_step
        datamodule = getattr(trainer, "datamodule", None)
        skipped = datamodule.skip_counts() if hasattr(datamodule, "skip_counts") else {}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "metrics.json").write_text(
            json.dumps({"metrics": metrics, "skipped": skipped}, indent=2)
        )
        table = Table(title=f"final metrics after {trainer.global_step} optimizer steps")
        table.add_column("metric")
        table.add_column("value", justify="right")
        shown = [k for k in metrics if k.startswith("val/") or k in ("train/loss", "global_step")]
        if self.main_metric in shown:
            shown.remove(self.main_metric)
            shown.insert(0, self.main_metric)
        for key in shown:
            value = metrics[key]
            text = f"{value:.4f}" if isinstance(value, float) else str(value)
            table.add_row(key, text, style="bold" if key == self.main_metric else None)
        for key, count in skipped.items():
            table.add_row(f"skipped {key}", str(count))
        Console().print(table)
        Console().print(f"run folder: {self.output_dir}")
