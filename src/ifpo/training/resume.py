"""Which checkpoint a (re)started run continues from.

A requeued SLURM job or a restarted local run lands in the same run folder (the folder is named
by the job id / sweep subfolder / `run_name`, never by the start time of the restart), so with
`resume: auto` the newest complete checkpoint in that folder is the place to continue from. Two
writers leave checkpoints there, both atomically (ifpo.training.checkpoint_files): the
`resume_checkpoint` callback (`checkpoints/last.ckpt`, periodic and at the end) and the preemption
protocol (`hpc_ckpt_<n>.ckpt` in the run folder, Lightning's SLURM requeue name). Either may be a
single file or, under DeepSpeed, a directory of shards. Half-written ones are skipped, with a
line in the log saying so; the choice itself is logged too.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ifpo.training.checkpoint_files import candidates, complete_newest_first, describe, is_complete

log = logging.getLogger(__name__)

RESUME_MODES = ("auto", "never", "force")
LAST_CHECKPOINT = "last.ckpt"
HPC_PATTERN = "hpc_ckpt_*.ckpt"
LIGHTNING_ALIASES = ("last", "hpc", "best")


def candidate_checkpoints(run_dir: str | Path, checkpoint_dir: str | Path | None = None) -> list[Path]:
    """Every complete checkpoint a restart could continue from, newest first; incomplete ones are
    logged and left out."""
    complete, broken = complete_newest_first(candidates(run_dir, checkpoint_dir))
    for path in broken:
        log.warning("resume: skipping %s: incomplete (half-written?) %s", path, describe(path))
    return complete


def _looks_like_checkpoint(path: Path) -> bool:
    return path.is_file() or (path / "latest").exists() or path.name.endswith(".ckpt")


def resolve_ckpt_path(
    ckpt_path: str | None, resume: str, run_dir: str | Path, checkpoint_dir: str | Path | None = None
) -> str | None:
    """The checkpoint `trainer.fit` should load: an explicit `ckpt_path` wins, then `resume=auto`'s find.

    `ckpt_path` may be a checkpoint file, a DeepSpeed checkpoint directory, or a run folder (its
    newest complete checkpoint is taken). `resume=force` resumes like `auto`; it only differs in
    the run-folder guard (ifpo.training.run_folder).
    """
    if resume not in RESUME_MODES:
        raise ValueError(f"resume={resume!r}: expected one of {list(RESUME_MODES)}")
    if ckpt_path:
        if str(ckpt_path) in LIGHTNING_ALIASES:
            return str(ckpt_path)
        path = Path(ckpt_path)
        if not path.exists():
            raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file or directory")
        if path.is_dir() and not _looks_like_checkpoint(path):
            found = candidate_checkpoints(path)
            if not found:
                raise FileNotFoundError(f"ckpt_path={ckpt_path}: a folder with no complete checkpoint in it")
            log.info("ckpt_path=%s: continuing from %s (%s)", ckpt_path, found[0], describe(found[0]))
            return str(found[0])
        if not is_complete(path):
            raise ValueError(
                f"ckpt_path={ckpt_path}: incomplete checkpoint (a half-written file, or a DeepSpeed "
                "directory without every rank's shards); pass another one or the run folder"
            )
        log.info("ckpt_path: continuing from %s (%s)", path, describe(path))
        return str(path)
    if resume == "never":
        return None
    found = candidate_checkpoints(run_dir, checkpoint_dir)
    if not found:
        return None
    log.info("resume=%s: continuing from %s (%s)", resume, found[0], describe(found[0]))
    return str(found[0])
