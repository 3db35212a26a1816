"""Assemble the local report: PNG curves and bars (matplotlib, Agg) and one self-contained report.html."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from ifpo.report.collect import Run, read_sweep
from ifpo.report.stats import Spread, curve_spread, spread

# (title, metric names tried in order: the first one a run logged is plotted)
CURVES = (
    ("loss", ("train/loss",)),
    ("reward margins", ("train/rewards/margins",)),
    ("reward accuracies", ("train/rewards/accuracies",)),
    ("validation loss", ("val/loss",)),
    ("validation reward accuracies", ("val/rewards/accuracies",)),
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


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_curve(groups: dict[str, list[Run]], title: str, names: tuple[str, ...], path: Path) -> Path | None:
    """Mean over seeds per step, shaded ± one standard deviation; None when no run logged the metric."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for label, runs in groups.items():
        curves = [next((run.curves[n] for n in names if n in run.curves), []) for run in runs]
        points = curve_spread([c for c in curves if c])
        if not points:
            continue
        steps = [s for s, _ in points]
        mean = [p.mean for _, p in points]
        std = [p.std for _, p in points]
        ax.plot(steps, mean, marker="o" if len(steps) < 10 else None, label=f"{label} (n={len(runs)})")
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(names[0])
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def final_table(groups: dict[str, list[Run]]) -> tuple[list[str], dict[str, dict[str, Spread]]]:
    metrics = sorted({k for runs in groups.values() for r in runs for k in r.final
                      if k.startswith(FINAL_PREFIXES) and "/kind/" not in k})
    table = {label: {m: s for m in metrics if (s := spread(r.final.get(m) for r in runs))} for label, runs in groups.items()}
    return metrics, table


def kind_table(groups: dict[str, list[Run]]) -> tuple[list[str], dict[str, dict[str, Spread]]]:
    kinds = sorted({k for runs in groups.values() for r in runs for k in r.kinds})
    table = {label: {k: s for k in kinds if (s := spread(r.kinds.get(k) for r in runs))} for label, runs in groups.items()}
    return kinds, table


def plot_kinds(kinds: list[str], table: dict[str, dict[str, Spread]], path: Path) -> Path | None:
    if not kinds:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.35 * len(kinds) * max(1, len(table)) + 1.2)))
    bar = 0.8 / max(1, len(table))
    for n, (label, row) in enumerate(table.items()):
        ys = [i + n * bar for i in range(len(kinds))]
        ax.barh(ys, [row[k].mean if k in row else 0 for k in kinds], height=bar,
                xerr=[row[k].std if k in row else 0 for k in kinds], label=label)
    ax.set_yticks([i + bar * (len(table) - 1) / 2 for i in range(len(kinds))], kinds, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("strict accuracy (mean ± std over seeds)")
    ax.set_title("final evaluation by method and constraint kind")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _table_html(title: str, columns: list[str], table: dict[str, dict[str, Spread]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["runs", *columns])
    rows = "".join(
        "<tr><td>" + html.escape(label) + "</td>"
        + "".join(f"<td>{html.escape(row[c].text()) if c in row else '-'}</td>" for c in columns) + "</tr>"
        for label, row in table.items()
    )
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{rows}</table>"


def build_report(sweep_dir: str | Path, output_dir: str | Path | None = None) -> dict[str, Any]:
    """Write report.html, the PNGs and report.json under `output_dir` (default <sweep>/report)."""
    sweep_dir = Path(sweep_dir)
    runs = read_sweep(sweep_dir)
    out = Path(output_dir) if output_dir else sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    images = []
    for title, names in CURVES:
        path = plot_curve(groups, title, names, out / f"{title.replace(' ', '_')}.png")
        if path:
            images.append((title, path))
    metrics, finals = final_table(groups)
    kinds, by_kind = kind_table(groups)
    kinds_png = plot_kinds(kinds, by_kind, out / "accuracy_by_kind.png")
    parts = [f"<h1>Sweep {html.escape(str(sweep_dir))}</h1>",
             f"<p>{len(runs)} runs in {len(groups)} groups (mean ± sample std over seeds).</p>",
             "<h2>Runs</h2><table><tr><th>folder</th><th>method</th><th>seed</th><th>overrides</th></tr>"
             + "".join(f"<tr><td>{html.escape(r.folder.name)}</td><td>{html.escape(r.method)}</td><td>{r.seed}</td>"
                       f"<td>{html.escape(' '.join(r.overrides))}</td></tr>" for r in runs) + "</table>"]
    parts += [f"<h2>{html.escape(t)}</h2><img src='{p.name}' alt='{html.escape(t)}'>" for t, p in images]
    parts.append(_table_html("final metrics", metrics, finals))
    if kinds:
        parts.append(_table_html("final evaluation by constraint kind (strict accuracy)", kinds, by_kind))
        parts.append(f"<img src='{kinds_png.name}' alt='accuracy by kind'>")
    else:
        parts.append("<p>No evaluation results (train with callbacks=heldout_eval or run eval.py into the run folders).</p>")
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
    report = out / "report.html"
    report.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>ifpo sweep report</title>"
                      f"<style>{style}</style></head><body>{''.join(parts)}</body></html>", encoding="utf-8")
    data = {
        "sweep_dir": str(sweep_dir), "html": str(report), "images": [str(p) for _, p in images]
        + ([str(kinds_png)] if kinds_png else []),
        "groups": {label: [str(r.folder) for r in rs] for label, rs in groups.items()},
        "final": {label: {m: vars(s) for m, s in row.items()} for label, row in finals.items()},
        "by_kind": {label: {k: vars(s) for k, s in row.items()} for label, row in by_kind.items()},
    }
    (out / "report.json").write_text(json.dumps(data, indent=2))
    return data
