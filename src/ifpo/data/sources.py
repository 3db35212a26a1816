"""Where records come from: local files (JSONL/JSON/Parquet), a hub dataset, or the synthetic set."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ifpo.data import synthetic
from ifpo.data.errors import SkipCounter
from ifpo.data.records import read_rows, validate_rows

log = logging.getLogger(__name__)


def load_file_records(path: str | Path, kind: str, on_error: str, skips: SkipCounter) -> list[dict[str, Any]]:
    """Validated records from one local file; errors name the file, line and field."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.suffix == ".parquet":
        import datasets

        table = datasets.load_dataset("parquet", data_files=str(path), split="train")
        rows = ((i + 1, row) for i, row in enumerate(table))
        return validate_rows(rows, kind, f"{path} (row)", on_error, skips)
    if path.suffix not in (".jsonl", ".json"):
        raise ValueError(f"{path}: unsupported data file type {path.suffix!r}; use .jsonl, .json or .parquet")
    return validate_rows(read_rows(path), kind, str(path), on_error, skips)


def load_hub_records(name: str, config: str | None, split: str, kind: str, on_error: str, skips: SkipCounter) -> list[dict]:
    """Validated records from `datasets.load_dataset(name, config, split=split)` (hub id or local dataset dir)."""
    import datasets

    table = datasets.load_dataset(name, config, split=split)
    rows = ((i + 1, row) for i, row in enumerate(table))
    return validate_rows(rows, kind, f"{name}[{split}] (row)", on_error, skips)


def ensure_synthetic_files(cfg: Any) -> tuple[Path, Path]:
    """Generate the synthetic train/val JSONL once (deterministic in the seed), then reuse them."""
    kind = getattr(cfg.records, "value", cfg.records)
    out = Path(cfg.output_dir) / (
        f"v{synthetic.GENERATOR_VERSION}-{kind}-n{cfg.num_train_tasks}-v{cfg.num_val_tasks}-s{cfg.samples_per_task}-m{cfg.min_margin}-seed{cfg.seed}"
    )
    train_path, val_path = out / "train.jsonl", out / "val.jsonl"
    if not (train_path.exists() and val_path.exists()):
        train_tasks = synthetic.generate_tasks(cfg.num_train_tasks, "train", cfg.seed)
        val_tasks = synthetic.generate_tasks(cfg.num_val_tasks, "heldout", cfg.seed)
        for tasks, path in ((train_tasks, train_path), (val_tasks, val_path)):
            records = synthetic.build_records(kind, tasks, cfg.seed, cfg.samples_per_task, cfg.min_margin)
            synthetic.write_jsonl(records, path)
        log.info("generated synthetic %s data in %s", kind, out)
    return train_path, val_path
