"""A run folder is never silently overwritten: same config to resume, finished means finished.

The folder keeps its own record in `.ifpo/`: the resolved config the weights were trained with
(`config.json`), copies of Hydra's `.hydra/*.yaml` (Hydra rewrites those
before any of our code runs, so they are put back when a start is refused), `finished.json` once
training completed, and `resume_force.jsonl`, one line per `resume=force` that changed the config.

On a start in a folder that holds a checkpoint or a finished run:
- a config that differs from the record is refused (exit 2) with the differing keys, old -> new,
  unless `resume=force`, which continues with the new config and appends to `resume_force.jsonl`;
- a finished run says so and exits 0 without touching metrics.json, checkpoints or `.hydra/`
  (`resume=force` trains on, e.g. with a larger trainer.max_steps).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ifpo.io.atomic import atomic_write_text
from ifpo.training.checkpoint_files import candidates

log = logging.getLogger(__name__)

RECORD = ".ifpo"
# How to start and where, not what is trained: the folder is the same by construction, and
# run_name defaults to the start time outside SLURM (a resumed multirun job would differ).
IGNORED_KEYS = ("resume", "ckpt_path", "plan", "run_name", "paths")
HYDRA_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")


class RunFolderConflict(SystemExit):
    """This folder holds a run trained with another config; exits 2 with the differing keys."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def global_rank() -> int:
    """This process's rank from the launcher's environment (rank 0 alone writes the record)."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def flat_config(cfg: DictConfig) -> dict[str, str]:
    """Dotted key -> JSON value of the resolved config, minus IGNORED_KEYS."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    flat: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = json.dumps(node, sort_keys=True, default=str)

    walk(container, "")
    return {k: v for k, v in flat.items() if k.split(".")[0] not in IGNORED_KEYS}


def differing_keys(old: dict[str, str], new: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def _hydra_dir() -> Path | None:
    """This run's `.hydra/` folder, or None outside a Hydra run (tests composing configs directly)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
        folder = Path(hydra.runtime.output_dir) / hydra.output_subdir if hydra.output_subdir else None
    except Exception:  # noqa: BLE001  (HydraConfig unset, or composed without a runtime section)
        return None
    return folder if folder is not None and folder.is_dir() else None


class RunFolder:
    """The record of one run folder and the decision to start, resume, refuse or stop."""

    def __init__(self, run_dir: str | Path, checkpoint_dir: str | Path | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = checkpoint_dir
        self.record = self.run_dir / RECORD

    @property
    def finished(self) -> bool:
        return (self.record / "finished.json").is_file()

    def recorded_config(self) -> dict[str, str] | None:
        path = self.record / "config.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def has_progress(self) -> bool:
        return self.finished or bool(candidates(self.run_dir, self.checkpoint_dir))

    # -- writes (global rank 0 only) --------------------------------------------------------
    def save_record(self, flat: dict[str, str]) -> None:
        self.record.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.record / "config.json", json.dumps(flat, indent=1, sort_keys=True))
        hydra = _hydra_dir()
        if hydra is not None:
            (self.record / "hydra").mkdir(exist_ok=True)
            for name in HYDRA_FILES:
                if (hydra / name).is_file():
                    shutil.copy2(hydra / name, self.record / "hydra" / name)

    def restore_hydra_files(self) -> None:
        """Put back the `.hydra/` files of the run that is in this folder (Hydra overwrote them)."""
        hydra = _hydra_dir()
        if hydra is None:
            return
        for name in HYDRA_FILES:
            saved = self.record / "hydra" / name
            if saved.is_file():
                shutil.copy2(saved, hydra / name)  # contents and mtime

    def mark_finished(self, global_step: int) -> None:
        self.record.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.record / "finished.json", json.dumps({"global_step": global_step,
        "unix": time.time()}))

    def log_force(self, diff: dict[str, tuple[str | None, str | None]]) -> None:
        entry = {"unix": time.time(), "argv": sys.argv, "changed": {k: [o, n] for k, (o, n) in diff.items()}}
        with open(self.record / "resume_force.jsonl", "a") as handle:
            handle.write(json.dumps(entry) + "\n")

    # -- the decision ------------------------------------------------------------------------
    def check(self, cfg: DictConfig, resume: str) -> str:
        """'start' (nothing to protect), 'resume', or 'finished'; raises RunFolderConflict."""
        rank0 = global_rank() == 0
        flat = flat_config(cfg)
        recorded = self.recorded_config()
        if recorded is None or not self.has_progress():
            if rank0:
                self.save_record(flat)
            return "start"
        diff = differing_keys(recorded, flat)
        if diff and resume != "force":
            if rank0:
                self.restore_hydra_files()
            raise RunFolderConflict(conflict_message(self.run_dir, diff))
        if resume == "force":
            if rank0:
                if diff:
                    self.log_force(diff)
                    self.save_record(flat)
                (self.record / "finished.json").unlink(missing_ok=True)
            if diff:
                log.warning(
                    "resume=force: continuing %s with %d changed key(s): %s (recorded in %s)",
                    self.run_dir,
                    len(diff),
                    ", ".join(diff),
                    self.record / "resume_force.jsonl",
                )
            return "resume"
        if self.finished:
            if rank0:
                self.restore_hydra_files()
            return "finished"
        return "resume"


def conflict_message(run_dir: Path, diff: dict[str, tuple[str | None, str | None]], shown: int = 20) -> str:
    lines = [
        f"error: run folder {run_dir} holds a run trained with a different config; refusing to resume it."
    ]
    lines.append(f"{len(diff)} differing key(s) (recorded -> this command):")
    for key, (old, new) in list(diff.items())[:shown]:
        lines.append(
            f"  {key}: {old if old is not None else '(absent)'} -> {new if new is not None else '(absent)'}"
        )
    if len(diff) > shown:
        lines.append(f"  ... and {len(diff) - shown} more")
    lines.append(
        "Use another run_name for a new run, or resume=force to continue this one with the new config"
    )
    lines.append(
        f"(recorded in {run_dir / RECORD / 'resume_force.jsonl'}). Nothing in the folder was changed."
    )
    return "\n".join(lines)


def finished_metrics(run_dir: str | Path) -> dict[str, float]:
    """The final metrics a finished run wrote (metrics.json), for sweepers re-asking for them."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text()).get("metrics", {})
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
