"""Resumable JSONL output keyed by source id.

Records of one instruction are appended and fsynced, then one line goes to a progress
ledger (``<out>.progress.jsonl``) with the output's byte length and that instruction's
stats. On restart the output is cut back to the last ledger entry (dropping any records of
an instruction whose ledger line never made it) and finished ids are skipped, so a killed
and rerun build ends with byte-identical output and stats.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ifpo.builders.stats import BuildStats
from ifpo.io.jsonl import cut_from_line, read_log


class ResumableJsonl:
    """``done`` ids, ``commit(id, records, stats)``, ``total_stats()``; a config fingerprint guards reuse."""

    def __init__(self, path: str | Path, fingerprint: str, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.ledger = self.path.with_name(self.path.name + ".progress.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for p in (self.path, self.ledger):
                p.unlink(missing_ok=True)
        self.done: dict[str, BuildStats] = {}
        self.fingerprint = fingerprint
        self._recover()

    def _recover(self) -> None:
        if not self.ledger.exists():
            self.path.write_text("")
            self._append_ledger({"fingerprint": self.fingerprint})
            return
        good, cut_at = read_log(self.ledger)  # a line cut short by a kill ends what is kept
        offset = 0
        if not good or good[0].get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"{self.path} was started with a different builder config (or is not a build output); "
                "rerun with builder.overwrite=true or choose another builder.output"
            )
        for entry in good[1:]:
            self.done[entry["id"]] = BuildStats.from_dict(entry["stats"])
            offset = entry["offset"]
        if cut_at is not None:
            cut_from_line(self.ledger, cut_at)  # the cut line and everything after it are discarded
        if not self.path.exists():
            raise ValueError(
                f"{self.path} is missing but its progress ledger exists; use builder.overwrite=true"
            )
        with self.path.open("r+b") as handle:
            handle.truncate(offset)

    def _append_ledger(self, entry: dict[str, Any]) -> None:
        with self.ledger.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def commit(self, source_id: str, records: Iterable[dict[str, Any]], stats: BuildStats) -> None:
        """Append ``records`` for ``source_id`` durably, then mark it done."""
        if source_id in self.done:
            raise ValueError(f"source id {source_id!r} committed twice")
        with self.path.open("a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            offset = handle.tell()
        self._append_ledger({"id": source_id, "offset": offset, "stats": stats.to_dict()})
        self.done[source_id] = stats

    def total_stats(self) -> BuildStats:
        total = BuildStats()
        for stats in self.done.values():
            total.add(stats)
        return total
