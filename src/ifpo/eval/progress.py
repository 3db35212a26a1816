"""Append-only, keyed JSONL checkpoints so an interrupted evaluation loses nothing and resumes.

Every generated response and every judgement is appended (and flushed to disk) the moment it
exists. A rerun pointed at the same folder reads what is there and only does the rest, so a
crash or Ctrl-C in generation or judging costs at most the batch or the calls in flight.

Why a hand-written store rather than a database: one JSONL line per finished unit is readable
with any tool, needs no dependency, and a torn last line (the process died mid-write) is the
only corruption possible -- it is cut off on open, so the next append starts on a clean line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ifpo.io.jsonl import BadLine, cut_torn_tail, read_jsonl

log = logging.getLogger(__name__)


class ProgressStore:
    """``key -> record`` persisted as ``{"key": ..., "value": ...}`` lines; thread-safe appends."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._done: dict[str, Any] = {}
        if self.path is not None and self.path.exists():
            self._done = self._read(self.path)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        cut = cut_torn_tail(path)
        if cut:
            log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", path, cut)
        done: dict[str, Any] = {}
        for number, entry in read_jsonl(path, check_unicode=False):
            problem = entry.problem if isinstance(entry, BadLine) else ""
            if not problem:
                try:
                    done[str(entry["key"])] = entry["value"]
                    continue
                except (KeyError, TypeError) as exc:
                    problem = str(exc)
            raise ValueError(
                f"{path}:{number}: not a progress record ({problem}); delete the file to start over"
            )
        if done:
            log.info("%s: resuming with %d finished item(s)", path, len(done))
        return done

    def __contains__(self, key: object) -> bool:
        return str(key) in self._done

    def __len__(self) -> int:
        return len(self._done)

    def get(self, key: object) -> Any:
        return self._done[str(key)]

    def items(self) -> Mapping[str, Any]:
        return dict(self._done)

    def put(self, key: object, value: Any) -> None:
        """Record ``value`` for ``key`` and make it durable before returning."""
        line = json.dumps({"key": str(key), "value": value}, ensure_ascii=False) + "\n"
        with self._lock:
            self._done[str(key)] = value
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
