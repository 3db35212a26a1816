"""Publish a sweep as a W&B Report (when logged in), or say how to sync offline runs and publish later."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ifpo.config.wandb_env import has_wandb_login
from ifpo.training.wandb_logging import RUN_ID_FILE

PANEL_METRICS = ("train/loss", "train/rewards/margins", "train/rewards/accuracies", "val/rewards/accuracies")


def offline_runs(sweep_dir: Path) -> list[Path]:
    return sorted(sweep_dir.glob("**/wandb/offline-run-*"))


def sync_instructions(sweep_dir: Path) -> str:
    runs = offline_runs(sweep_dir)
    if not runs:
        return "No W&B runs in this sweep (train with logger=wandb or logger=many to log them)."
    lines = ["W&B: not logged in, so no W&B Report was created. To publish later:",
             "  wandb login            # or export WANDB_API_KEY=...",
             *(f"  wandb sync {run}" for run in runs),
             f"  python -m ifpo.report {sweep_dir} --wandb-project <project> [--wandb-entity <entity>]"]
    return "\n".join(lines)


def run_ids(sweep_dir: Path) -> list[str]:
    """The W&B run ids of the sweep's runs (each run folder keeps its id in wandb_run_id.txt)."""
    return sorted(
        {p.read_text().strip() for p in sweep_dir.glob("**/" + RUN_ID_FILE) if p.read_text().strip()}
    )


def build_wandb_report(sweep_dir: Path, project: str, entity: str | None, ids: list[str]) -> Any:
    """A W&B Report object: one panel grid over exactly this sweep's runs, seeds grouped by loss head."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    runset = wr.Runset(
        entity=entity or "", project=project, name=sweep_dir.name, filters=[expr.Metric("ID").isin(ids)]
    )
    panels = [
        wr.LinePlot(
            title=metric,
            x="Step",
            y=[metric],
            groupby=wr.Config("loss.name"),
            groupby_aggfunc="mean",
            groupby_rangefunc="stddev",
        )
        for metric in PANEL_METRICS
    ]
    return wr.Report(
        entity=entity or "",
        project=project,
        title=f"ifpo sweep {sweep_dir.name}",
        description=f"Runs of {sweep_dir}: mean and standard deviation over seeds per loss head.",
        blocks=[wr.PanelGrid(runsets=[runset], panels=panels)],
    )


def publish(sweep_dir: Path, project: str, entity: str | None) -> str:
    """Create and save the W&B Report (needs a login and the runs synced); returns its URL."""
    try:
        report = build_wandb_report(sweep_dir, project, entity, run_ids(sweep_dir))
    except ImportError as error:
        raise RuntimeError(
            "W&B Reports need the wandb-workspaces package (pip install wandb-workspaces)"
        ) from error
    report.save()
    return str(report.url)


def maybe_publish(sweep_dir: Path, project: str | None, entity: str | None) -> str:
    """Publish when logged in and a project is named; otherwise the offline instructions."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled") or not has_wandb_login():
        return sync_instructions(sweep_dir)
    if not project:
        return "W&B: logged in; pass --wandb-project to also create a W&B Report."
    return f"W&B Report: {publish(sweep_dir, project, entity)}"
