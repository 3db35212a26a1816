"""On-disk cache of judge answers, one JSON file per request.

Why one file per entry rather than an append-only JSONL: many threads (and
possibly several processes sharing ``cache_dir``) write at once. Per-entry files
written with :func:`atomic_write_json` need no lock, an interrupted run keeps
every answer it finished, and a reader can never see a torn entry.

The key is a SHA-256 over the canonical JSON of everything that changes the
answer (model, messages, sampling parameters) -- never the API key, and not the
base URL, so the same judge served on another host or port reuses the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from ifpo.io.atomic import atomic_write_json

log = logging.getLogger(__name__)


def request_key(request: dict[str, Any]) -> str:
    """Stable hex digest of a request body (key order and whitespace do not matter)."""
    canonical = json.dumps(request, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Maps a request body to the validated answer text the judge gave for it."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, request: dict[str, Any]) -> str | None:
        """The cached answer, or None on a miss (an unreadable entry counts as a miss and is logged)."""
        key = request_key(request)
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("judge cache entry %s is unreadable (%s); it will be recomputed", path, exc)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("answer"), str):
            log.warning("judge cache entry %s has the wrong shape; it will be recomputed", path)
            return None
        return entry["answer"]

    def put(self, request: dict[str, Any], answer: str) -> None:
        """Store ``answer`` atomically; the request is kept alongside for auditing."""
        key = request_key(request)
        atomic_write_json(self._path(key), {"key": key, "request": request, "answer": answer})
