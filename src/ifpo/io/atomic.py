"""Crash-safe file writes.

We write the whole file to a temporary sibling, fsync it, then ``os.replace``
it over the target. ``os.replace`` is atomic on POSIX within one filesystem, so a
reader (or a rerun after a kill) sees either the old complete file or the new
complete file, never a half-written one. A leftover ``.tmp-*`` sibling from a
kill between write and replace is harmless: readers never look at it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` all at once (temp file + fsync + os.replace)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=target.suffix, dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        # Keep the directory tidy on ordinary errors; a hard kill can still leave the temp file.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike[str], payload: Any) -> None:
    """Serialise ``payload`` as UTF-8 JSON and write it atomically."""
    atomic_write_text(path, json.dumps(payload, ensure_ascii=False, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write with any writer (torch.save, csv, fsspec); moved over
    ``path`` when the block ends without error, removed when it raises."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
