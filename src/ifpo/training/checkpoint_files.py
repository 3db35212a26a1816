"""Checkpoints on disk: written atomically, recognised as complete, pruned.

A checkpoint is a single file (`torch.save` zip) or, under DeepSpeed, a directory with one shard
per rank. Both are written under a temporary name (`<name>.partial`) and renamed to their final
name by global rank 0 only after every rank has finished writing; so a final name is always a
whole checkpoint and a kill mid-write leaves only a `.partial` that resume ignores and the next
save deletes. Checkpoints written by other tools (or older versions) are still checked: a file
must be a readable zip, a DeepSpeed directory must name its tag in `latest` and hold a readable
model and optimizer shard for every rank from 0 up.

Lightning's own writers (`trainer.save_checkpoint`, ModelCheckpoint) write in place, which is
why this small layer exists; it calls them for the actual serialisation.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import lightning.pytorch as pl

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
OLD_SUFFIX = ".old"
MARKER = "ifpo_complete.json"  # inside a DeepSpeed checkpoint directory, written last
HPC_PREFIX = "hpc_ckpt_"
_SHARD = re.compile(r"zero_pp_rank_(\d+)_mp_rank_\d+_(model|optim)_states\.pt$")
_MP_SHARD = re.compile(r"mp_rank_(\d+)_model_states\.pt$")


def _readable_zip(path: Path) -> bool:
    """True when `path` is a zip whose central directory (written last) is intact: a cheap
    whole-file check, since a truncated torch.save file has no end-of-archive record."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _deepspeed_dir_complete(path: Path) -> bool:
    """A DeepSpeed checkpoint directory is complete when its `latest` tag folder holds a
    readable model and optimizer shard for every rank 0..n-1 (ZeRO-3), or a model file (ZeRO<3)."""
    latest = path / "latest"
    if not latest.is_file():
        return False
    tag_dir = path / latest.read_text().strip()
    if not tag_dir.is_dir():
        return False
    shards: dict[str, set[int]] = {"model": set(), "optim": set()}
    for file in tag_dir.iterdir():
        match = _SHARD.search(file.name)
        if match:
            if not _readable_zip(file):
                return False
            shards[match.group(2)].add(int(match.group(1)))
    if shards["optim"]:
        ranks = set(range(max(shards["optim"]) + 1))
        return shards["optim"] == ranks and shards["model"] == ranks
    models = [f for f in tag_dir.iterdir() if _MP_SHARD.search(f.name)]
    return bool(models) and all(_readable_zip(f) for f in models)


def is_complete(path: str | Path) -> bool:
    """Whether `path` is a whole checkpoint (file or DeepSpeed directory) that resume may load."""
    path = Path(path)
    if path.name.endswith((PARTIAL_SUFFIX, OLD_SUFFIX)):
        return False
    if path.is_file():
        return _readable_zip(path)
    if path.is_dir():
        if (path / MARKER).is_file():
            return True
        return _deepspeed_dir_complete(path)
    return False


def saved_at(path: str | Path) -> int:
    """When a checkpoint was finished (ns): its file's mtime, or a directory's marker / `latest`."""
    path = Path(path)
    if path.is_dir():
        for name in (MARKER, "latest"):
            if (path / name).exists():
                return (path / name).stat().st_mtime_ns
    return path.stat().st_mtime_ns


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`. A file replaces atomically; a directory cannot replace a non-empty
    one, so the old one is moved aside first and deleted after (a kill in between leaves the
    old checkpoint as `<name>.old`, which :func:`candidates` still offers)."""
    if tmp.is_dir() and final.exists():
        old = final.with_name(final.name + OLD_SUFFIX)
        _remove(old)
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        if final.is_dir():
            _remove(final)
        os.replace(tmp, final)


def atomic_save(trainer: pl.Trainer, filepath: str | Path, weights_only: bool = False) -> Path:
    """`trainer.save_checkpoint` under a temporary name, renamed once every rank has written.

    Call on every rank (the save is collective under DeepSpeed). Returns the final path.
    """
    final = Path(filepath)
    tmp = final.with_name(final.name + PARTIAL_SUFFIX)
    if trainer.is_global_zero:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)  # a leftover of a save that was killed
    trainer.strategy.barrier("atomic_save:start")
    trainer.save_checkpoint(str(tmp), weights_only=weights_only)  # ends with a barrier of all ranks
    if trainer.is_global_zero:
        if tmp.is_dir():
            marker = {"global_step": trainer.global_step, "world_size": trainer.world_size,
            "saved_unix": time.time()}
            (tmp / MARKER).write_text(json.dumps(marker))
        _swap_into_place(tmp, final)
    trainer.strategy.barrier("atomic_save:renamed")
    return final


def candidates(run_dir: str | Path, checkpoint_dir: str | Path | None = None) -> list[Path]:
    """Every checkpoint a restart could continue from: `last.ckpt` and `hpc_ckpt_*.ckpt`, files or
    directories, complete or not, plus a `.old` left by a kill between the two renames of a swap."""
    run_dir = Path(run_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else run_dir / "checkpoints"
    found = [checkpoint_dir / "last.ckpt", checkpoint_dir / ("last.ckpt" + OLD_SUFFIX)]
    found += sorted(run_dir.glob(f"{HPC_PREFIX}*.ckpt")) + sorted(
        run_dir.glob(f"{HPC_PREFIX}*.ckpt{OLD_SUFFIX}")
    )
    return [p for p in found if p.exists()]


def complete_newest_first(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(complete checkpoints newest first, incomplete ones). A `.old` counts only when its
    final name is missing (the kill happened between the renames)."""
    complete, broken = [], []
    for path in paths:
        if path.name.endswith(OLD_SUFFIX):
            if path.with_name(path.name[: -len(OLD_SUFFIX)]).exists():
                continue
            ok = (
                _deepspeed_dir_complete(path)
                or (path / MARKER).is_file()
                or (path.is_file() and _readable_zip(path))
            )
        else:
            ok = is_complete(path)
        (complete if ok else broken).append(path)
    return sorted(complete, key=saved_at, reverse=True), broken


def prune(run_dir: str | Path, keep: Path, checkpoint_dir: str | Path | None = None) -> list[Path]:
    """Delete the preemption checkpoints (`hpc_ckpt_*`) other than `keep` and every leftover
    `.partial` / `.old`: after a complete save they can only be older or broken. Rank 0 only."""
    run_dir = Path(run_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else run_dir / "checkpoints"
    doomed = [p for p in run_dir.glob(f"{HPC_PREFIX}*") if p.resolve() != Path(keep).resolve()]
    for folder in {run_dir, checkpoint_dir}:
        doomed += [p for p in folder.glob(f"*{PARTIAL_SUFFIX}")] + [
            p for p in folder.glob(f"*.ckpt{OLD_SUFFIX}")
        ]
    removed = []
    for path in dict.fromkeys(doomed):
        if path.exists() and path.resolve() != Path(keep).resolve():
            _remove(path)
            removed.append(path)
    if removed:
        log.info("checkpoints: pruned %s", ", ".join(p.name for p in removed))
    return removed


def describe(path: Path) -> str:
    """`file` or `DeepSpeed directory` for log lines."""
    return "DeepSpeed directory" if Path(path).is_dir() else "file"
