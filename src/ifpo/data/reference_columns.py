"""Precomputed reference log-probs as a transform of the data: new datasets, a new collator.

ref.mode=precomputed scores every example once (ifpo.training.reference_cache); this module
turns those scores into data: one `reference_logp__<role>` column per role added to each set
(datasets' add_column returns a new dataset) and a collator that wraps the datamodule's and
attaches them to each batch (`PaddedBatch/PackedBatch.reference_logps`). It builds new objects
and changes none, so the datamodule is rebuilt around the result
(PreferenceDataModule.with_transform) instead of being patched from outside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ifpo.data.datamodule import Collator, Splits
from ifpo.models.batch import Batch

REFERENCE_COLUMN = "reference_logp__{role}"


class ReferenceLogpsCollator:
    """Wraps a collator: the batch it returns carries reference_logps {role: [B]} from the columns."""

    def __init__(self, inner: Collator, roles: Sequence[str]) -> None:
        self.inner, self.roles = inner, tuple(roles)

    def __call__(self, examples: list[dict[str, Any]]) -> Batch:
        return self.inner(examples).with_reference(
            {
                role: torch.tensor(
                    [e[REFERENCE_COLUMN.format(role=role)] for e in examples], dtype=torch.float32
                )
                for role in self.roles
            }
        )

    def __getattr__(self, name: str) -> Any:  # keep the inner collator's attributes visible
        if name == "inner":  # during unpickling in dataloader workers
            raise AttributeError(name)
        return getattr(self.inner, name)


@dataclass(frozen=True)
class ReferenceColumns:
    """A Splits transform: `cache[split][role]` float32 [len(split)] becomes a column per role.

    `source` names the cache file in the error raised when its row counts do not match the data.
    """

    cache: Mapping[str, Mapping[str, torch.Tensor]]
    roles: tuple[str, ...]
    source: Path

    def _with_columns(self, name: str, dataset: Any) -> Any:
        for role in self.roles:
            values = self.cache[name][role]
            if len(values) != len(dataset):
                raise ValueError(
                    f"reference cache {self.source}: {name}/{role} has {len(values)} rows, "
                    f"data has {len(dataset)}"
                )
            dataset = dataset.add_column(REFERENCE_COLUMN.format(role=role), values.tolist())
        return dataset

    def __call__(self, splits: Splits) -> Splits:
        return Splits(
            train=self._with_columns("train", splits.train),
            val=None if splits.val is None else self._with_columns("val", splits.val),
            collator=ReferenceLogpsCollator(splits.collator, self.roles),
        )
