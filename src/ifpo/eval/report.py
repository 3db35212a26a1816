"""Write an evaluation's results: per-example JSONL, summary JSON, a terminal table, a PNG chart,
and the same numbers to any configured Lightning loggers (a W&B table + summary for W&B).

The per-example file keeps every generated response with the fields its benchmark's
responses loader reads, so ``eval.responses=<run>/examples.jsonl`` rescoring needs no model.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ifpo.eval.rule_scoring import ScoreReport

EXAMPLES_FILE = "examples.jsonl"
SUMMARY_FILE = "summary.json"
CHART_FILE = "accuracy_by_kind.png"


@dataclass
class BenchmarkResult:
    """Everything one benchmark run produced, independent of how it was scored."""

    benchmark: str
    metrics: dict[str, float | int | None]  # headline numbers (accuracies are fractions in [0, 1])
    examples: list[dict[str, Any]]  # one JSON-serialisable record per item
    per_kind: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> count, strict, loose
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count of items left out
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # e.g. per language / per turn

    def flat_metrics(self) -> dict[str, float]:
        """``<benchmark>/<name>`` -> value for loggers (None values dropped)."""
        flat = {f"{self.benchmark}/{k}": float(v) for k, v in self.metrics.items() if v is not None}
        for group, values in self.groups.items():
            flat.update({f"{self.benchmark}/{group}/{k}": float(v) for k, v in values.items()})
        for kind, row in self.per_kind.items():
            flat[f"{self.benchmark}/kind/{kind}/strict"] = float(row["strict"])
        return flat


def kind_table(report: ScoreReport) -> dict[str, dict[str, float]]:
    """The per-instruction-id accuracy of a rule-scored report as plain dicts."""
    return {
        k: {"count": r.count, "strict": r.strict, "loose": r.loose}
        for k, r in report.per_instruction().items()
    }


def write_examples(path: Path, examples: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per line; returns the number of lines."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in examples:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_chart(result: BenchmarkResult, path: Path) -> Path:
    """Horizontal bars: strict and loose accuracy per constraint kind (or the headline metrics)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    if result.per_kind:
        labels = list(result.per_kind)
        series = {
            "strict": [result.per_kind[k]["strict"] for k in labels],
            "loose": [result.per_kind[k]["loose"] for k in labels],
        }
        title = f"{result.benchmark}: accuracy per constraint kind"
    else:
        values = {k: float(v) for k, v in result.metrics.items() if _is_fraction(v)}
        labels, series = list(values), {"score": list(values.values())}
        title = f"{result.benchmark}: scores"
    height = max(2.5, 0.32 * len(labels) * len(series) + 1.2)
    fig, ax = plt.subplots(figsize=(9, height))
    bar = 0.8 / len(series)
    for n, (name, values) in enumerate(series.items()):
        ax.barh([i + n * bar for i in range(len(labels))], values, height=bar, label=name)
    ax.set_yticks([i + bar * (len(series) - 1) / 2 for i in range(len(labels))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(loc="lower right")
    # CJK metric names (SysBench constraint types) lack glyphs in the default font
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _is_fraction(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0


def write_results(result: BenchmarkResult, output_dir: str | Path, chart: bool = True) -> dict[str, Path]:
    """Write examples.jsonl, summary.json and (optionally) the chart under ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"examples": out / EXAMPLES_FILE, "summary": out / SUMMARY_FILE}
    n_lines = write_examples(paths["examples"], result.examples)
    if chart:
        paths["chart"] = write_chart(result, out / CHART_FILE)
    summary = {
        "benchmark": result.benchmark,
        "num_examples": n_lines,
        "metrics": result.metrics,
        "groups": result.groups,
        "per_kind": result.per_kind,
        "skipped": result.skipped,
        "files": {name: path.name for name, path in paths.items()},
    }
    paths["summary"].write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return paths


def print_table(result: BenchmarkResult, console: Console | None = None) -> None:
    """Headline metrics, groups and per-kind accuracy as rich tables."""
    console = console or Console()
    table = Table(title=f"{result.benchmark}: {len(result.examples)} examples")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        table.add_row(name, _fmt(value))
    for group, values in result.groups.items():
        for name, value in values.items():
            table.add_row(f"{group}/{name}", _fmt(value))
    for reason, count in result.skipped.items():
        table.add_row(f"skipped {reason}", str(count))
    console.print(table)
    if result.per_kind:
        kinds = Table(title=f"{result.benchmark}: accuracy per constraint kind")
        for column in ("kind", "count", "strict", "loose"):
            kinds.add_column(column, justify="left" if column == "kind" else "right")
        for kind, row in result.per_kind.items():
            kinds.add_row(kind, str(int(row["count"])), _fmt(row["strict"]), _fmt(row["loose"]))
        console.print(kinds)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def log_to_loggers(
    result: BenchmarkResult, loggers: Iterable[Any], files: Mapping[str, Path] | None = None
) -> None:
    """Send the flat metrics to each Lightning logger; W&B also gets the examples table, the summary
    and copies of the result files (summary.json, the chart) in its run folder, offline runs included."""
    flat = result.flat_metrics()
    for logger in loggers:
        logger.log_metrics(flat, step=0)
        if type(logger).__name__ == "WandbLogger":
            columns = sorted({key for record in result.examples for key in record})
            rows = [[_cell(record.get(c)) for c in columns] for record in result.examples]
            logger.log_table(key=f"{result.benchmark}/examples", columns=columns, data=rows)
            logger.experiment.summary.update(flat)
            if result.per_kind:
                kind_rows = [[k, r["count"], r["strict"], r["loose"]] for k, r in result.per_kind.items()]
                logger.log_table(
                    key=f"{result.benchmark}/per_kind",
                    columns=["kind", "count", "strict", "loose"],
                    data=kind_rows,
                )
            for path in (files or {}).values():
                if path.suffix in (".json", ".png"):  # examples are already the table above
                    shutil.copy2(path, Path(logger.experiment.dir) / path.name)
        logger.save()
        logger.finalize("success")
        if type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()  # flush the summary now: an eval run is complete here


def _cell(value: Any) -> Any:
    """W&B table cells must be scalars: nested values become JSON text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, ensure_ascii=False)
