"""Assemble the local report: one self-contained report.html (figures embedded) plus the PNGs and report.json.

Tables and grouping are pandas (`frames`), figures matplotlib (`plots`), the page a jinja2 template
(`templates/report.html.j2`, autoescaped).
"""

from __future__ import annotations

import base64
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from omegaconf import OmegaConf

from ifpo.report import plots
from ifpo.report.collect import Run, read_sweep
from ifpo.report.frames import cell, curve_stats, curves_frame, final_frame, kinds_frame
from ifpo.report.samples import group_samples
from ifpo.training.terminal import short_name

# (PNG name, metric) of the curve panels, in grid order; panels no run logged are left out.
CURVES = (
    ("loss", "train/loss"),
    ("reward_margins", "train/rewards/margins"),
    ("reward_accuracies", "train/rewards/accuracies"),
    ("validation_loss", "val/loss"),
    ("validation_reward_margins", "val/rewards/margins"),
    ("validation_reward_accuracies", "val/rewards/accuracies"),
    ("heldout_accuracy", "heldout/prompt_strict"),
)
FINAL_PREFIXES = ("val/", "heldout/", "train/loss")


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs keyed by a short label: the overrides that differ between groups (the method if only one)."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.group].append(run)
    split = {key: dict(o.partition("=")[::2] for o in key.split()) for key in groups}
    keys = {k for parts in split.values() for k in parts}
    varying = [k for k in sorted(keys) if len({parts.get(k) for parts in split.values()}) > 1]
    labels = {}
    for key, members in groups.items():
        label = " ".join(f"{k}={split[key].get(k, '-')}" for k in varying) or members[0].method
        labels[label if label not in labels else key] = members
    return labels


def _b64(path: Path | None) -> str | None:
    return base64.b64encode(path.read_bytes()).decode("ascii") if path else None


def _main_metric(runs: list[Run]) -> str:
    config = OmegaConf.load(runs[0].folder / ".hydra" / "config.yaml")
    return str(config.get("optimized_metric") or "val/rewards/accuracies")


def _pivot_rows(
    frame: pd.DataFrame, key: str, labels: list[str], first: str | None = None
) -> list[dict[str, Any]]:
    """One row per metric/kind, one cell per group ("-" where a group lacks it)."""
    keys = list(dict.fromkeys(frame[key]))
    keys = sorted(keys, key=lambda k: (k != first, k))
    rows = []
    for k in keys:
        sub = frame[frame[key] == k].set_index("group")
        cells = [
            cell(sub.at[g, "mean"], sub.at[g, "std"], int(sub.at[g, "n"])) if g in sub.index else "-"
            for g in labels
        ]
        rows.append({key: k, "short": short_name(k), "cells": cells, "main": k == first})
    return rows


def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ifpo.report", "templates"), autoescape=True)
    return env.get_template("report.html.j2")


def build_report(
    sweep_dir: str | Path, output_dir: str | Path | None = None, samples: int = 3, sample_tokens: int = 64
) -> dict[str, Any]:
    """Write report.html (self-contained), the PNGs and report.json under `output_dir`
    (default <sweep>/report).

    `samples` prompts of each group's own validation data are answered by the group's first run's
    last checkpoint (0 = no generation, no model loaded).
    """
    sweep_dir = Path(sweep_dir)
    runs = read_sweep(sweep_dir)
    out = Path(output_dir) if output_dir else sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    labels = [f"{label} (n={len(members)})" for label, members in groups.items()]
    named = dict(zip(labels, groups.values()))
    main_metric = _main_metric(runs)

    stats = curve_stats(curves_frame(named))
    metrics = [m for _, m in CURVES]
    curves_png = plots.curves_grid(stats, metrics, labels, out / "curves.png")
    panels = [p for name, m in CURVES if (p := plots.single_curve(stats, m, labels, out / f"{name}.png"))]

    finals = final_frame(named, FINAL_PREFIXES)
    low, high = plots.metric_range(main_metric)
    main_png = plots.bars(
        finals[finals.metric == main_metric],
        "metric",
        out / "main_metric.png",
        f"final {main_metric}",
        short_name(main_metric),
        (low, high) if math.isfinite(low) and math.isfinite(high) else None,
    )
    kinds = kinds_frame(named)
    kinds_png = plots.bars(
        kinds,
        "kind",
        out / "accuracy_by_kind.png",
        "final evaluation by constraint kind",
        "strict accuracy (mean ± std over seeds)",
    )

    sample_groups = []
    for label, members in named.items() if samples > 0 else ():
        found, note = group_samples(members[0], samples, sample_tokens)
        sample_groups.append({"label": label, "samples": found, "note": note})

    page = _template().render(
        sweep_name=sweep_dir.name,
        sweep_dir=str(sweep_dir),
        n_runs=len(runs),
        groups=labels,
        main_metric=main_metric,
        runs=[
            {
                "group": next(lb for lb, ms in named.items() if r in ms),
                "folder": r.folder.name,
                "method": r.method,
                "seed": r.seed,
                "overrides": " ".join(r.overrides),
            }
            for r in runs
        ],
        curves_png=_b64(curves_png),
        panel_files=[p.name for p in panels],
        main_png=_b64(main_png),
        final_rows=_pivot_rows(finals, "metric", labels, first=main_metric),
        kinds_png=_b64(kinds_png),
        kind_rows=_pivot_rows(kinds, "kind", labels),
        samples=sample_groups,
    )
    report = out / "report.html"
    report.write_text(page, encoding="utf-8")
    images = [p for p in (curves_png, *panels, main_png, kinds_png) if p]
    data = {
        "sweep_dir": str(sweep_dir),
        "html": str(report),
        "main_metric": main_metric,
        "images": [str(p) for p in images],
        "groups": {label: [str(r.folder) for r in rs] for label, rs in groups.items()},
        "final": _nested(finals, "metric", groups, labels),
        "by_kind": _nested(kinds, "kind", groups, labels),
        "samples": {g["label"]: [vars(s) for s in g["samples"]] for g in sample_groups},
    }
    (out / "report.json").write_text(json.dumps(data, indent=2))
    return data


def _nested(frame: pd.DataFrame, key: str, groups: dict[str, list[Run]], labels: list[str]) -> dict[str, Any]:
    """{group: {metric: {mean, std, n}}} keyed by the plain group label (report.json's layout)."""
    plain = dict(zip(labels, groups))
    out: dict[str, Any] = {label: {} for label in groups}
    for row in frame.itertuples(index=False):
        out[plain[row.group]][getattr(row, key)] = {
            "mean": float(row.mean),
            "std": float(row.std),
            "n": int(row.n),
        }
    return out
