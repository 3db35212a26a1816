"""Read what a sweep left on disk: per run its config, metric curves (metrics.csv) and final results.

A run folder is any folder with `.hydra/config.yaml`; runs are grouped by their overrides without
the seed, so the seeds of one method become one line with a spread.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SEED_OVERRIDE = re.compile(r"^\+*seed=")
HIDDEN_PREFIXES = ("hydra.", "paths.", "data.synthetic.output_dir", "run_name=")


class ReportError(ValueError):
    """A sweep folder or one of its files cannot be read; the message names the file."""


@dataclass
class Run:
    folder: Path
    overrides: list[str]
    method: str                                   # loss.name of the run
    seed: int | None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # metric -> [(step, value)]
    final: dict[str, float] = field(default_factory=dict)                    # metrics.json
    kinds: dict[str, float] = field(default_factory=dict)                    # constraint kind -> accuracy

    @property
    def group(self) -> str:
        """The overrides that define the experiment (seed and file locations left out)."""
        kept = [o for o in self.overrides if not SEED_OVERRIDE.match(o) and not o.startswith(HIDDEN_PREFIXES)]
        return " ".join(kept) or self.method


def run_folders(sweep_dir: Path) -> list[Path]:
    """Every run under `sweep_dir` (itself included), in job-number order."""
    folders = {p.parent.parent for p in sweep_dir.glob("**/.hydra/config.yaml")}
    return sorted(
        folders, key=lambda p: (len(p.parts), int(p.name) if p.name.isdigit() else math.inf, p.name)
    )


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ReportError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None


def read_curves(path: Path) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(step, value)] from a Lightning CSVLogger metrics.csv (empty cells skipped)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "step" not in reader.fieldnames:
            raise ReportError(f"{path}:1: no 'step' column (expected a Lightning CSVLogger metrics.csv)")
        for line, row in enumerate(reader, start=2):
            for key, text in row.items():
                if key in ("step", "epoch") or text in ("", None):
                    continue
                try:
                    curves.setdefault(key, []).append((int(float(row["step"])), float(text)))
                except ValueError:
                    raise ReportError(f"{path}:{line}: field '{key}': {text!r} is not a number") from None
    return curves


def read_kinds(folder: Path, final: dict[str, float]) -> dict[str, float]:
    """Accuracy per constraint kind: held-out eval metrics of training, or eval.py summary.json files."""
    kinds = {k.split("/kind/", 1)[1]: v for k, v in final.items() if "/kind/" in k}
    for summary in sorted(folder.glob("**/summary.json")):
        try:
            per_kind = json.loads(summary.read_text()).get("per_kind") or {}
        except json.JSONDecodeError as error:
            raise ReportError(f"{summary}:{error.lineno}: not valid JSON ({error.msg})") from None
        kinds.update({kind: float(row["strict"]) for kind, row in per_kind.items()})
    return kinds


def read_run(folder: Path) -> Run:
    config = _yaml(folder / ".hydra" / "config.yaml") or {}
    overrides_file = folder / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in (_yaml(overrides_file) or [])] if overrides_file.is_file() else []
    loss = config.get("loss") or {}
    run = Run(folder, overrides, str(loss.get("name", "?")), config.get("seed"))
    metrics_csv = folder / "csv" / "version_0" / "metrics.csv"
    if metrics_csv.is_file():
        run.curves = read_curves(metrics_csv)
    metrics_json = folder / "metrics.json"
    if metrics_json.is_file():
        try:
            run.final = {k: float(v) for k, v in json.loads(metrics_json.read_text())["metrics"].items()}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ReportError(f'{metrics_json}: expected {{"metrics": {{name: number}}}} ({error})') from None
    run.kinds = read_kinds(folder, run.final)
    return run


def read_sweep(sweep_dir: str | Path) -> list[Run]:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir}: no such sweep folder")
    runs = [read_run(folder) for folder in run_folders(sweep_dir)]
    if not runs:
        raise ReportError(f"{sweep_dir}: no runs found (no */.hydra/config.yaml below it)")
    return runs
