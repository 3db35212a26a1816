"""One table for a whole sweep: every job's overrides and final metrics, written when the multirun ends.

Hydra calls `on_multirun_end` in the launching process after all jobs returned (locally or as a
SLURM array through submitit); the jobs themselves may have run elsewhere, so the summary is
read back from each job folder (`.hydra/overrides.yaml` + the `metrics.json` FinalSummary wrote)
rather than from in-memory return values. A job without metrics.json is listed as `missing`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from ifpo.training.terminal import short_name

log = logging.getLogger(__name__)

SUMMARY_JSON = "sweep_summary.json"
SUMMARY_CSV = "sweep_summary.csv"
# Overrides that only move files around say nothing about the experiment.
HIDDEN_OVERRIDE_PREFIXES = ("hydra.", "paths.", "data.synthetic.output_dir")


@dataclass
class JobSummary:
    job: str                    # the job's subfolder name (hydra.job.num by default)
    folder: str
    overrides: list[str]
    status: str                 # done | missing (no metrics.json: failed, killed or still running)
    metrics: dict[str, float] = field(default_factory=dict)

    def override_text(self) -> str:
        return " ".join(o for o in self.overrides if not o.startswith(HIDDEN_OVERRIDE_PREFIXES))


def job_folders(sweep_dir: Path) -> list[Path]:
    """Subfolders that hold a Hydra job (a `.hydra/overrides.yaml`), in job-number order."""
    folders = [p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")]
    return sorted(folders, key=lambda p: (0, int(p.name)) if p.name.isdigit() else (1, p.name))


def read_job(folder: Path) -> JobSummary:
    overrides_file = folder / ".hydra" / "overrides.yaml"
    try:
        overrides = [str(o) for o in (yaml.safe_load(overrides_file.read_text()) or [])]
    except yaml.YAMLError as error:
        raise ValueError(f"{overrides_file}: not valid YAML: {error}") from None
    metrics_file = folder / "metrics.json"
    if not metrics_file.is_file():
        return JobSummary(folder.name, str(folder), overrides, "missing")
    try:
        metrics = json.loads(metrics_file.read_text())["metrics"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f'{metrics_file}: expected {{"metrics": {{...}}}} as FinalSummary writes ({error})'
        ) from None
    return JobSummary(folder.name, str(folder), overrides, "done", {k: float(v) for k, v in metrics.items()})


def summarize_sweep(sweep_dir: str | Path, metric: str | None = None) -> list[JobSummary]:
    """Read every job of `sweep_dir`; write sweep_summary.json and .csv there; return the jobs."""
    sweep_dir = Path(sweep_dir)
    jobs = [read_job(folder) for folder in job_folders(sweep_dir)]
    keys = sorted({k for job in jobs for k in job.metrics})
    (sweep_dir / SUMMARY_JSON).write_text(
        json.dumps(
            {"sweep_dir": str(sweep_dir), "optimized_metric": metric, "jobs": [vars(j) for j in jobs]},
            indent=2,
        )
    )
    with open(sweep_dir / SUMMARY_CSV, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["job", "status", "overrides", *keys])
        for job in jobs:
            writer.writerow(
                [job.job, job.status, job.override_text(), *(job.metrics.get(k, "") for k in keys)]
            )
    return jobs


def varying_overrides(jobs: list[JobSummary]) -> list[str]:
    """Override keys whose value differs between jobs: what the sweep swept."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job.overrides:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    return [key for key, seen in values.items() if len(seen) > 1 or any(key not in _keys(j) for j in jobs)]


def _keys(job: JobSummary) -> set[str]:
    return {o.partition("=")[0] for o in job.overrides}


def summary_table(jobs: list[JobSummary], metric: str | None = None, title: str = "sweep") -> Table:
    """Job, the swept overrides, status, the optimised metric, step and the validation metrics."""
    swept = varying_overrides(jobs) if len(jobs) > 1 else []
    shown = [metric] if metric else []
    others = sorted(
        {k for j in jobs for k in j.metrics if k.startswith("val/") and k != metric},
        key=lambda k: (k not in ("val/loss", "val/rewards/margins"), k),
    )
    shown += others[:3]  # the full set is in sweep_summary.csv; a terminal row stays readable
    # Short headers (val/acc, val/margin...) so a 100-column terminal shows them; the optimised
    # metric comes first, bold, and is never the column that gets squeezed.
    table = Table(title=title, caption=f"{short_name(metric)} = {metric}" if metric else None)
    texts = [
        " ".join(o for o in j.overrides if o.partition("=")[0] in swept) if swept else j.override_text()
        for j in jobs
    ]
    overrides_width = min(40, max([len("overrides"), *map(len, texts)]))
    for column in ("job", "overrides", "status", *shown, "global_step"):
        main = column == metric
        width = overrides_width if column == "overrides" else len(short_name(column)) if main else None
        table.add_column(
            short_name(column),
            justify="left" if column in ("job", "overrides", "status") else "right",
            style="bold" if main else None,
            no_wrap=width is not None,
            min_width=width,
        )
    for job, text in zip(jobs, texts):
        values = [_fmt(job.metrics.get(k)) for k in (*shown, "global_step")]
        table.add_row(job.job, text, job.status, *values)
    return table


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return str(int(value)) if float(value).is_integer() and abs(value) >= 1 else f"{value:.4f}"


class SweepSummaryCallback(Callback):
    """Hydra callback (conf/hydra/default.yaml): summarise the sweep when the multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        metric = config.get("optimized_metric")
        if not sweep_dir.is_dir():
            return
        jobs = summarize_sweep(sweep_dir, metric)
        Console().print(summary_table(jobs, metric, title=f"sweep {sweep_dir}"))
        log.info("sweep summary: %s, %s", sweep_dir / SUMMARY_JSON, sweep_dir / SUMMARY_CSV)
