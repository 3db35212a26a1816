"""LightningDataModule: records -> validated -> tokenised (datasets.map) -> collated batches."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import datasets
import lightning.pytorch as pl
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from ifpo.data.collate import PreferenceCollator
from ifpo.data.packed_collate import PackedPreferenceCollator
from ifpo.data.sampler import ResumableDataLoader, ResumableSampler, global_seed
from ifpo.data.sources import ensure_synthetic_files, load_file_records, load_hub_records
from ifpo.data.tokenize import TokenizeSettings, tokenize_record
from ifpo.io.errors import SkipCounter
from ifpo.models.batch import Batch

log = logging.getLogger(__name__)
LOGGED_DROPS = 20  # dropped examples named one by one in the log; the rest are only counted


class DataSpec(Protocol):
    """What the data needs from a loss head (a LossHead satisfies it): which records, which sequences.

    A protocol rather than an import of ifpo.losses: data sits below losses in the layers.
    """

    name: str
    record_kind: str
    roles: tuple[str, ...]


#: Tokenised examples -> one typed batch (PreferenceCollator, PackedPreferenceCollator or a wrapper).
Collator = Callable[[list[dict[str, Any]]], Batch]


@dataclass(frozen=True)
class Splits:
    """What the dataloaders serve: the tokenised sets and the collator that batches them."""

    train: datasets.Dataset
    val: datasets.Dataset | None
    collator: Collator


#: Splits -> new Splits (never changing its argument), e.g. ifpo.data.reference_columns.ReferenceColumns.
SplitsTransform = Callable[[Splits], Splits]


def make_collator(
    cfg: Any, roles: tuple[str, ...], pad_token_id: int
) -> PreferenceCollator | PackedPreferenceCollator:
    """data.packing: one padding-free row per batch (prompts shared with data.prefix_sharing); else padded
    rows."""
    if cfg.get("packing", False):
        return PackedPreferenceCollator(roles, prefix_sharing=bool(cfg.get("prefix_sharing", False)))
    return PreferenceCollator(roles, pad_token_id)


class PreferenceDataModule(pl.LightningDataModule):
    """The sets and collator one run trains on; the loss head's roles reach the collator here, once.

    `splits` (with the `skips` that produced them) builds a datamodule over sets already prepared,
    which `with_transform` uses to return a new datamodule rather than patch this one.
    """

    def __init__(
        self,
        cfg: Any,
        tokenizer: PreTrainedTokenizerBase,
        head: DataSpec,
        splits: Splits | None = None,
        skips: dict[str, SkipCounter] | None = None,
    ) -> None:
        super().__init__()
        self.cfg, self.tokenizer, self.head = cfg, tokenizer, head
        self.kind = cfg.kind or head.record_kind
        if self.kind != head.record_kind:
            raise ValueError(
                f"data.kind={self.kind} but loss={head.name} trains on {head.record_kind} records"
            )
        self.skips: dict[str, SkipCounter] = {} if skips is None else skips
        self.train_set: datasets.Dataset | None = splits.train if splits else None
        self.val_set: datasets.Dataset | None = splits.val if splits else None
        self.collator: Collator = (
            splits.collator if splits else make_collator(cfg, head.roles, tokenizer.pad_token_id)
        )

    def _records(self, split: str) -> list[dict[str, Any]]:
        cfg, on_error = self.cfg, self.cfg.on_error
        skips = self.skips.setdefault(split, SkipCounter())
        if cfg.synthetic.enabled:
            train_path, val_path = ensure_synthetic_files(cfg.synthetic)
            files = [train_path] if split == "train" else [val_path]
        elif cfg.hub_name:
            hub_split = cfg.train_split if split == "train" else cfg.val_split
            if hub_split is None:
                return []
            return load_hub_records(cfg.hub_name, cfg.hub_config, hub_split, self.kind, on_error, skips)
        else:
            files = list(cfg.train_files if split == "train" else cfg.val_files)
        records: list[dict[str, Any]] = []
        for path in files:
            records.extend(load_file_records(path, self.kind, on_error, skips))
        return records

    def _tokenize(self, records: list[dict[str, Any]], split: str) -> datasets.Dataset:
        settings = TokenizeSettings(self.cfg.max_length, self.cfg.max_prompt_length)
        table = datasets.Dataset.from_list(records)
        tokenized = table.map(  # records from files carry their "file:line" (SOURCE_KEY) into "where"
            lambda record: tokenize_record(record, self.kind, self.tokenizer, settings),
            remove_columns=table.column_names,
            desc=f"tokenising {split}",
        )
        skips = self.skips.setdefault(split, SkipCounter())
        dropped = tokenized.filter(lambda r: not r["keep"])
        for n, (reason, where) in enumerate(zip(dropped["drop_reason"], dropped["where"])):
            skips.add(reason, where or split)
            if n < LOGGED_DROPS:
                log.warning("data[%s]: dropped %s: %s", split, where or "a record", reason)
        if len(dropped) > LOGGED_DROPS:
            log.warning(
                "data[%s]: ... %d more dropped (counts by reason below)", split, len(dropped) - LOGGED_DROPS
            )
        kept = tokenized.filter(lambda r: r["keep"]).remove_columns(["keep", "drop_reason", "where"])
        return kept.with_format(None)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_records = self._records("train")
        val_records = self._records("val")
        if not val_records and self.cfg.val_fraction > 0:
            split = datasets.Dataset.from_list(train_records).train_test_split(
                test_size=self.cfg.val_fraction, seed=0
            )
            train_records, val_records = split["train"].to_list(), split["test"].to_list()
        if not train_records:
            raise ValueError(
                "no training records: check data.train_files / data.hub_name / data.synthetic"
                + (f"; {self.skips['train'].summary()}" if self.skips["train"].total else "")
            )
        self.train_set = self._tokenize(train_records, "train")
        self.val_set = self._tokenize(val_records, "val") if val_records else None
        self._check_validation(len(self.val_set or []))
        for split, counter in self.skips.items():
            log.info("data[%s]: %s", split, counter.summary())
        log.info(
            "data: %d train / %d val %s examples", len(self.train_set), len(self.val_set or []), self.kind
        )
        if len(self.train_set) == 0:
            raise ValueError(f"every training example was dropped: {self.skips['train'].summary()}")

    def splits(self) -> Splits:
        """The prepared sets and collator (reading and tokenising them on first use)."""
        self.setup("fit")
        assert self.train_set is not None  # setup raises rather than leave no training set
        return Splits(self.train_set, self.val_set, self.collator)

    def with_transform(self, transform: SplitsTransform) -> PreferenceDataModule:
        """A new datamodule over transform(self.splits()); this one is left as it is.

        How the precomputed reference joins the data (ifpo.data.reference_columns): the transform
        returns new datasets and a new collator, nothing sets another object's attributes.
        """
        return PreferenceDataModule(
            self.cfg, self.tokenizer, self.head, splits=transform(self.splits()), skips=self.skips
        )

    def _validation_disabled(self) -> bool:
        trainer = self.trainer
        return trainer is not None and trainer.limit_val_batches == 0

    def _check_validation(self, n_val: int) -> None:
        """No validation examples means the optimised metric (val/...) never exists: refuse when the
        user configured validation data, warn when there was none to begin with."""
        if n_val or self._validation_disabled():
            return
        cfg = self.cfg
        configured = list(cfg.val_files) if not cfg.synthetic.enabled and not cfg.hub_name else []
        if cfg.synthetic.enabled or configured or (cfg.hub_name and cfg.val_split):
            skipped = self.skips.get("val")
            why = skipped.summary() if skipped and skipped.total else "no rows"
            where = ", ".join(map(str, configured)) or (cfg.hub_name if cfg.hub_name else "synthetic val")
            raise ValueError(
                f"no validation examples in {where} ({why}): validation metrics, including the optimized "
                "metric, would never be computed. Fix the data, or train without validation: "
                "data.val_files=[] or trainer.limit_val_batches=0"
            )
        log.warning(
            "no validation data (data.val_files / data.val_fraction unset): no val/ metrics will be logged"
        )

    def skip_counts(self) -> dict[str, int]:
        """Flat {"split/reason": count} for logging."""
        return {f"{split}/{reason}": n for split, c in self.skips.items() for reason, n in c.counts.items()}

    def train_dataloader(self) -> DataLoader:
        # Resumable order: a killed or requeued run continues mid-epoch on the very next batch.
        trainer = self.trainer
        sampler = ResumableSampler(
            self.train_set,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            shuffle=bool(self.cfg.shuffle),
            seed=global_seed(),
        )
        return ResumableDataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            drop_last=True,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(
            self.val_set,
            batch_size=self.cfg.eval_batch_size,
            shuffle=False,
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
        )
