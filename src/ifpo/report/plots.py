"""The report's figures (matplotlib, Agg): a grid of training curves and bar charts with their values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def metric_range(metric: str) -> tuple[float, float]:
    """What values a metric can take, so a mean ± std band never leaves it (an accuracy of 1.1)."""
    if "accurac" in metric or metric.endswith(("/acc", "_rate")):
        return 0.0, 1.0
    if metric.endswith(("loss", "nll")):
        return 0.0, math.inf
    return -math.inf, math.inf


def _colors(labels: list[str]) -> dict[str, Any]:
    cmap = _plt().get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def draw_curve(ax: Any, stats: pd.DataFrame, metric: str, labels: list[str], colors: dict[str, Any]) -> bool:
    from matplotlib.ticker import MaxNLocator

    low, high = metric_range(metric)
    drawn = False
    for label in labels:
        rows = stats[(stats.group == label) & (stats.metric == metric)].sort_values("step")
        if rows.empty:
            continue
        steps, mean, std = rows.step.to_numpy(), rows["mean"].to_numpy(), rows["std"].to_numpy()
        ax.plot(
            steps,
            mean,
            color=colors[label],
            marker="o" if len(steps) < 10 else None,
            markersize=3,
            label=label,
        )
        ax.fill_between(
            steps,
            (mean - std).clip(low, high),
            (mean + std).clip(low, high),
            color=colors[label],
            alpha=0.2,
            linewidth=0,
        )
        drawn = True
    steps = sorted(stats[stats.metric == metric].step.unique())
    if len(steps) == 1:  # one validation: a single tick, not a float axis around it
        ax.set_xticks(steps)
        ax.set_xlim(steps[0] - 1, steps[0] + 1)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # optimizer steps are whole numbers
    ax.set_title(metric, fontsize=10)
    ax.set_xlabel("optimizer step", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if math.isfinite(low) and math.isfinite(high):
        ax.set_ylim(low - 0.02, high + 0.02)
    return drawn


def curves_grid(
    stats: pd.DataFrame, metrics: list[str], labels: list[str], path: Path, columns: int = 3
) -> Path | None:
    """All curves in one figure, `columns` panels a row, one legend for the whole grid."""
    metrics = [m for m in metrics if (stats.metric == m).any()]
    if not metrics:
        return None
    plt = _plt()
    rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows + 0.6), squeeze=False)
    colors = _colors(labels)
    for ax, metric in zip(axes.flat, metrics):
        draw_curve(ax, stats, metric, labels, colors)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 4), fontsize=9, frameon=False)
    legend_inches = 0.15 + 0.25 * math.ceil(len(names) / 4)
    fig.tight_layout(rect=(0, legend_inches / (3.0 * rows + 0.6), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def single_curve(stats: pd.DataFrame, metric: str, labels: list[str], path: Path) -> Path | None:
    """One panel as its own PNG (for slides and papers), same style as the grid."""
    if not (stats.metric == metric).any():
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    draw_curve(ax, stats, metric, labels, _colors(labels))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_bars(ax: Any, frame: pd.DataFrame, category: str, value_range: tuple[float, float] | None) -> None:
    """Horizontal bars per (category, group): mean written on each bar, ± std whiskers, legend beside."""
    categories = list(dict.fromkeys(frame[category]))
    labels = list(dict.fromkeys(frame.group))
    colors = _colors(labels)
    height = 0.8 / len(labels)
    for n, label in enumerate(labels):
        rows = frame[frame.group == label].set_index(category).reindex(categories)
        ys = [i + n * height for i in range(len(categories))]
        container = ax.barh(
            ys,
            rows["mean"].fillna(0),
            height=height,
            xerr=rows["std"].fillna(0),
            color=colors[label],
            label=label,
            error_kw={"elinewidth": 0.8, "capsize": 2},
        )
        ax.bar_label(
            container, labels=[f"{v:.2f}" if pd.notna(v) else "" for v in rows["mean"]], padding=3, fontsize=7
        )
    ax.set_yticks(
        [i + height * (len(labels) - 1) / 2 for i in range(len(categories))], categories, fontsize=8
    )
    ax.invert_yaxis()
    if value_range:
        ax.set_xlim(value_range[0], value_range[1] * 1.12)  # room for the value labels
    ax.legend(
        fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )  # beside, never on bars


def bars(
    frame: pd.DataFrame,
    category: str,
    path: Path,
    title: str,
    xlabel: str,
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> Path | None:
    """`draw_bars` as a PNG; None when there is nothing to draw."""
    if frame.empty:
        return None
    plt = _plt()
    rows = len(set(frame[category])) * len(set(frame.group))
    fig, ax = plt.subplots(figsize=(9, max(2.2, 0.32 * rows + 1.3)))
    draw_bars(ax, frame, category, value_range)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
