"""The sweep as pandas tables: curves (long format), mean ± std per step, final metrics per group."""

from __future__ import annotations

import pandas as pd

from ifpo.report.collect import Run


def curves_frame(groups: dict[str, list[Run]]) -> pd.DataFrame:
    """One row per (group, run, metric, step): everything the CSV loggers wrote."""
    rows = [
        (label, str(run.folder), metric, step, value)
        for label, runs in groups.items() for run in runs
        for metric, points in run.curves.items() for step, value in points
    ]
    return pd.DataFrame(rows, columns=["group", "run", "metric", "step", "value"])


def curve_stats(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (0 for one run) and run count per group, metric and step."""
    if curves.empty:
        return pd.DataFrame(columns=["group", "metric", "step", "mean", "std", "n"])
    stats = curves.groupby(["group", "metric", "step"], sort=True)["value"].agg(["mean", "std", "count"])
    return stats.rename(columns={"count": "n"}).fillna({"std": 0.0}).reset_index()


def final_frame(groups: dict[str, list[Run]], prefixes: tuple[str, ...]) -> pd.DataFrame:
    """Per group and final metric (metrics.json, names starting with `prefixes`): mean, std, n."""
    rows = [
        (label, metric, value)
        for label, runs in groups.items() for run in runs
        for metric, value in run.final.items() if metric.startswith(prefixes) and "/kind/" not in metric
    ]
    frame = pd.DataFrame(rows, columns=["group", "metric", "value"])
    if frame.empty:
        return pd.DataFrame(columns=["group", "metric", "mean", "std", "n"])
    stats = frame.groupby(["group", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
    return stats.rename(columns={"count": "n"}).fillna({"std": 0.0}).reset_index()


def kinds_frame(groups: dict[str, list[Run]]) -> pd.DataFrame:
    """Per group and constraint kind: strict accuracy mean, std, n over the group's runs."""
    rows = [
        (label, kind, acc)
        for label, runs in groups.items()
        for run in runs
        for kind, acc in run.kinds.items()
    ]
    frame = pd.DataFrame(rows, columns=["group", "kind", "value"])
    if frame.empty:
        return pd.DataFrame(columns=["group", "kind", "mean", "std", "n"])
    stats = frame.groupby(["group", "kind"], sort=False)["value"].agg(["mean", "std", "count"])
    return stats.rename(columns={"count": "n"}).fillna({"std": 0.0}).reset_index()


def cell(mean: float, std: float, n: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"
