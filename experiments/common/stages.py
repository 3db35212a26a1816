"""Resumable study stages: each stage is the subprocess commands a user would type, skipped when fresh.

A stage is skipped when its outputs exist, none is older than an input (make's rule) and its
commands are the ones that made them (saved as ``<logs>/<stage>.cmd``: a changed size or
override reruns the stage), so rerunning a killed study continues where it stopped. Each stage's
commands and output go to
``<logs>/<stage>.log``; its wall seconds to ``<out>/stage_times.json`` and the CPU seconds
(user + sys) of its processes to ``<out>/stage_cpu.json`` — the studies' timing tables.
"""

from __future__ import annotations

import json
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class StageError(RuntimeError):
    """A stage's command failed; the message names the stage, the command and its log."""


def fresh(outputs: Sequence[Path], inputs: Sequence[Path]) -> bool:
    """Every output exists and none is older than an input (make's rule)."""
    if not outputs or not all(p.exists() for p in outputs):
        return False
    newest_input = max((p.stat().st_mtime for p in inputs if p.exists()), default=0.0)
    return min(p.stat().st_mtime for p in outputs) >= newest_input


class StageRunner:
    """Runs, skips, logs and times the stages of one study output folder."""

    def __init__(self, out: Path, logs: Path, tag: str, force: bool = False, cwd: Path = ROOT) -> None:
        self.out, self.logs, self.tag, self.force, self.cwd = out, logs, tag, force, cwd
        self.logs.mkdir(parents=True, exist_ok=True)
        self.times_file = out / "stage_times.json"
        self.cpu_file = out / "stage_cpu.json"  # CPU seconds (user+sys) of each stage's processes
        self.times: dict[str, float] = self._load(self.times_file)
        self.cpu: dict[str, float] = self._load(self.cpu_file)

    @staticmethod
    def _load(path: Path) -> dict[str, float]:
        return json.loads(path.read_text()) if path.exists() else {}

    def say(self, message: str) -> None:
        print(f"[{self.tag}] {message}", flush=True)

    def stage(
        self,
        name: str,
        commands: list[list[str]],
        outputs: Sequence[Path],
        inputs: Sequence[Path] = (),
        force: bool = False,
    ) -> bool:
        """Run ``commands`` unless the outputs are fresh (and no force); time and log them.

        Returns whether the stage ran (False: skipped as fresh).
        """
        if (
            not (self.force or force)
            and fresh(list(outputs), list(inputs))
            and self.unchanged(name, commands)
        ):
            self.say(f"{name}: outputs exist, skipped")
            return False
        log_path = self.logs / f"{name}.log"
        start = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_start = usage.ru_utime + usage.ru_stime
        with log_path.open("w", encoding="utf-8") as log:
            for command in commands:
                line = shlex.join(command)
                self.say(f"{name}: {line}")
                log.write(f"$ {line}\n")
                log.flush()
                proc = subprocess.run(
                    command, check=False, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
                )
                if proc.returncode != 0:
                    log.flush()
                    tail = log_path.read_text(errors="replace").splitlines()[-15:]
                    raise StageError(
                        f"stage {name!r} failed (exit {proc.returncode}): {line}\n"
                        f"log: {log_path}\n" + "\n".join(tail)
                    )
        missing = [str(p) for p in outputs if not p.exists()]
        if missing:
            raise StageError(f"stage {name!r} finished but did not write {missing}; log: {log_path}")
        self._command_file(name).write_text(self._signature(commands))
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.record(name, seconds, usage.ru_utime + usage.ru_stime - cpu_start)
        self.say(f"{name}: done in {seconds:.0f} s")
        return True

    @staticmethod
    def _signature(commands: list[list[str]]) -> str:
        return "".join(shlex.join(c) + "\n" for c in commands)

    def _command_file(self, name: str) -> Path:
        return self.logs / f"{name}.cmd"

    def unchanged(self, name: str, commands: list[list[str]]) -> bool:
        """The stage last succeeded with exactly these commands."""
        path = self._command_file(name)
        return path.is_file() and path.read_text() == self._signature(commands)

    def record(self, name: str, wall: float, cpu: float) -> None:
        """Save one stage's wall and CPU seconds (re-read first: another runner may have added stages)."""
        self.times = {**self._load(self.times_file), name: round(wall, 1)}
        self.cpu = {**self._load(self.cpu_file), name: round(cpu, 1)}
        self.times_file.write_text(json.dumps(self.times, indent=2) + "\n")
        self.cpu_file.write_text(json.dumps(self.cpu, indent=2) + "\n")


def sweep_jobs(sweep: Path, experiment_prefix: str) -> dict[str, Path]:
    """``<method>_s<seed>`` -> job folder of a train.py multirun over ``+experiment=<prefix><method>``.

    Read from each job's ``.hydra/overrides.yaml``, so it does not depend on Hydra's job numbering.
    """
    import yaml

    jobs = {}
    for overrides_file in sorted(sweep.glob("*/.hydra/overrides.yaml")):
        values = dict(o.split("=", 1) for o in yaml.safe_load(overrides_file.read_text()))
        values = {k.lstrip("+"): v for k, v in values.items()}
        method = values["experiment"].removeprefix(experiment_prefix)
        jobs[f"{method}_s{values['seed']}"] = overrides_file.parent.parent
    return jobs


def run_study(cfg, name: str, study: Callable) -> None:
    """A study driver's entry: the smoke run writes to `<name>_smoke` so it never mixes with the full
    study, and a failed stage ends the process with its message (which names its log), not a traceback."""
    if cfg.study.smoke and cfg.study.name == name:
        cfg.study.name = f"{name}_smoke"
    try:
        study(cfg).run()
    except StageError as exc:
        print(f"[{name}] {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
