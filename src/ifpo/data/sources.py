"""Where records come from: local files (JSONL/JSON/Parquet), a hub dataset, or the synthetic set."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ifpo.data import synthetic
from ifpo.data.records import read_rows, validate_rows
from ifpo.io.errors import DataFormatError, SkipCounter

log = logging.getLogger(__name__)


def load_file_records(path: str | Path, kind: str, on_error: str, skips: SkipCounter) -> list[dict[str, Any]]:
    """Validated records from one local file; errors name the file, line and field."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.suffix == ".parquet":
        return validate_rows(read_parquet_rows(path), kind, f"{path} (row)", on_error, skips)
    if path.suffix not in (".jsonl", ".json"):
        raise ValueError(f"{path}: unsupported data file type {path.suffix!r}; use .jsonl, .json or .parquet")
    return validate_rows(read_rows(path), kind, str(path), on_error, skips)


def read_parquet_rows(path: Path, batch_rows: int = 1024) -> Iterator[tuple[int, Any]]:
    """(1-based row number, row dict) of a Parquet file, read with pyarrow batch by batch.

    A file pyarrow cannot open raises DataFormatError naming it; a row whose values cannot be
    turned into Python objects (e.g. invalid UTF-8 in a string column) is yielded as a
    DataFormatError for that row, so `on_error=skip` counts it and keeps the rest.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = f"{path} (row)"
    try:
        reader = pq.ParquetFile(path)
        batches = reader.iter_batches(batch_size=batch_rows)
    except (pa.ArrowException, OSError) as err:
        raise DataFormatError(str(path), 1, "<parquet>", f"not a readable Parquet file: {err}") from None
    start = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as err:
            raise DataFormatError(
                source, start + 1, "<parquet>", f"unreadable data after this row: {err}"
            ) from None
        try:
            rows: list[Any] = batch.to_pylist()
        except (pa.ArrowException, UnicodeDecodeError, ValueError):
            rows = []
            for i in range(batch.num_rows):  # find the bad row(s); the others are kept
                try:
                    rows.extend(batch.slice(i, 1).to_pylist())
                except (pa.ArrowException, UnicodeDecodeError, ValueError) as err:
                    rows.append(DataFormatError(source, start + i + 1, "<row>", f"unreadable values: {err}"))
        yield from ((start + i + 1, row) for i, row in enumerate(rows))
        start += batch.num_rows


def load_hub_records(
    name: str, config: str | None, split: str, kind: str, on_error: str, skips: SkipCounter
) -> list[dict]:
    """Validated records from `datasets.load_dataset(name, config, split=split)` (hub id or local dataset
    dir)."""
    import datasets

    table = datasets.load_dataset(name, config, split=split)
    rows = ((i + 1, row) for i, row in enumerate(table))
    return validate_rows(rows, kind, f"{name}[{split}] (row)", on_error, skips)


def ensure_synthetic_files(cfg: Any) -> tuple[Path, Path]:
    """Generate the synthetic train/val JSONL once (deterministic in the seed), then reuse them."""
    kind = cfg.records
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
