"""A CSV logger whose `metrics.csv` survives kills and resumes as one continuous series.

Lightning's CSVLogger deletes `metrics.csv` whenever its folder is not empty (the writer's
`_check_log_dir_exists`), so a resumed run (same folder, `version: 0`) lost every step logged
before the kill. This subclass keeps the file instead:

- on start, the existing rows and header are read and kept;
- the first flush of the resumed process starts at the first step it logs; that step and every
  later row of the earlier process are dropped (they came after the checkpoint and are being
  replayed), the rows before it are kept, so no step is missing or duplicated;
- rows reach the disk at every logging step (`flush_logs_every_n_steps=1`; Lightning's 100 would
  let a SIGKILL lose up to 100 steps of rows from before the checkpoint a restart continues from,
  a gap nothing replays). One appended row per logging step costs next to nothing.

Lightning's writer is reused for everything else (header growth, hparams.yaml); the only
replaced behaviour is the deletion.
"""

from __future__ import annotations

import csv
import logging
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from ifpo.io.atomic import atomic_path

log = logging.getLogger(__name__)


def _step_of(row: dict[str, Any]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class ContinuingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, keeping an existing metrics.csv and cutting it where the resumed run starts."""

    def __init__(self, log_dir: str) -> None:
        self._earlier: list[dict[str, str]] | None = None
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        # Lightning deletes metrics.csv here; read it instead (cut at the first flush, see save()).
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            self._earlier = list(reader)
            self.metrics_keys = sorted(reader.fieldnames or [])

    def save(self) -> None:
        if self.metrics and self._earlier is not None:
            self._cut_replayed_rows()
        super().save()

    def _cut_replayed_rows(self) -> None:
        """Rewrite the file with the earlier rows before this process's first logged step."""
        earlier, self._earlier = self._earlier or [], None
        first = min(float(m["step"]) for m in self.metrics)
        kept = [row for row in earlier if _step_of(row) < first]
        self._record_new_keys()  # header: union of the earlier and the new keys
        # a kill mid-rewrite leaves the old file, not half of it
        with atomic_path(self.metrics_file_path) as tmp, self._fs.open(str(tmp), "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(kept)
        log.info(
            "metrics.csv: resumed at step %d, kept %d earlier rows, dropped %d that are replayed",
            int(first),
            len(kept),
            len(earlier) - len(kept),
        )


class ResumableCSVLogger(CSVLogger):
    """CSVLogger that continues (never deletes) the metrics.csv of a resumed run; see the module doc."""

    def __init__(
        self,
        save_dir: str,
        name: str | None = "csv",
        version: int | str | None = 0,
        prefix: str = "",
        flush_logs_every_n_steps: int = 1,
    ) -> None:
        super().__init__(
            save_dir,
            name=name,
            version=version,
            prefix=prefix,
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )

    @property
    @rank_zero_experiment
    def experiment(self) -> ContinuingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
