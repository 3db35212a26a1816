"""The typed batch contract: what the collators build, how Lightning moves it, how a reference joins it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import datasets
import lightning.pytorch as pl
import pytest
import torch
from lightning_utilities.core.apply_func import apply_to_collection
from omegaconf import OmegaConf

from ifpo.data.collate import PreferenceCollator
from ifpo.data.datamodule import PreferenceDataModule, Splits
from ifpo.data.packed_collate import PackedPreferenceCollator
from ifpo.data.reference_columns import REFERENCE_COLUMN, ReferenceColumns, ReferenceLogpsCollator
from ifpo.losses import get_loss_head
from ifpo.models.batch import PackedBatch, PaddedBatch

PAIRS = [
    {"prompt_ids": [5, 6, 7], "chosen_ids": [8, 9], "rejected_ids": [10], "margin": 2.0},
    {"prompt_ids": [11], "chosen_ids": [12, 13, 14], "rejected_ids": [15, 16], "margin": 0.0},
]
QUAD = {"x1_ids": [1, 2], "x2_ids": [3], "y1_ids": [4], "y2_ids": [5, 6], "margin": 1.0}


def tensors(batch) -> dict[str, torch.Tensor]:
    out = {k: v for k, v in vars(batch).items() if isinstance(v, torch.Tensor)}
    out.update({f"reference_logps.{k}": v for k, v in (batch.reference_logps or {}).items()})
    return out


@pytest.mark.parametrize("loss,examples", [("dpo", PAIRS), ("sft", PAIRS), ("iopo", [QUAD, QUAD, QUAD])])
@pytest.mark.parametrize("packed", [False, True])
def test_collators_build_typed_batches_carrying_the_heads_roles(loss, examples, packed):
    head = get_loss_head(loss)
    collator = PackedPreferenceCollator(head.roles) if packed else PreferenceCollator(head.roles, 0)
    batch = collator(examples)
    assert type(batch) is (PackedBatch if packed else PaddedBatch)
    assert batch.roles == head.roles and batch.batch_size == len(examples)
    assert batch.margin.tolist() == [e["margin"] for e in examples] and batch.reference_logps is None
    rows = len(head.roles) * len(examples)
    if packed:
        assert batch.token_counts.shape == (rows,) and batch.input_ids.shape[0] == 1
    else:
        assert batch.input_ids.shape[0] == rows == batch.labels.shape[0]


@pytest.mark.parametrize("packed", [False, True])
def test_lightning_moves_the_whole_batch_with_its_reference(packed, monkeypatch):
    """The real transfer hook (what every strategy calls; it finds the batch's .to): every tensor moves,
    the reference dict too, the type and roles survive, and the collated batch is left as it was."""
    roles = ("chosen", "rejected")
    collated = (PackedPreferenceCollator(roles) if packed else PreferenceCollator(roles, 0))(PAIRS)
    batch = collated.with_reference(
        {"chosen": torch.tensor([-1.0, -2.0]), "rejected": torch.tensor([-3.0, -4.0])}
    )
    calls: list[tuple] = []
    own_to = type(batch).to
    monkeypatch.setattr(type(batch), "to", lambda self, *a, **k: calls.append(a) or own_to(self, *a, **k))
    moved = pl.LightningModule().transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert calls == [(torch.device("meta"),)]  # one call on the whole batch, not a walk over its fields
    assert type(moved) is type(batch) and moved.roles == roles and moved.batch_size == 2
    assert set(tensors(moved)) == set(tensors(batch)) and len(tensors(batch)) >= 5
    assert all(t.device.type == "meta" for t in tensors(moved).values())
    assert all(t.device.type == "cpu" for t in tensors(batch).values())
    assert collated.reference_logps is None  # with_reference returned a copy


def test_precision_plugins_can_walk_the_dataclass():
    """Lightning's precision plugins convert inputs with apply_to_collection, which rebuilds dataclasses
    field by field (and refuses frozen ones): the batch must come back typed, converted, and whole."""
    batch = PreferenceCollator(("chosen", "rejected"), 0)(PAIRS).with_reference(
        {"chosen": torch.zeros(2), "rejected": torch.ones(2)}
    )
    half = apply_to_collection(batch, torch.Tensor, lambda t: t.half() if t.is_floating_point() else t)
    assert type(half) is PaddedBatch and half.margin.dtype == torch.float16
    assert half.reference_logps["rejected"].dtype == torch.float16 and half.input_ids.dtype == torch.long
    assert batch.margin.dtype == torch.float32


def test_a_reference_without_every_role_is_refused():
    batch = PreferenceCollator(("chosen", "rejected"), 0)(PAIRS)
    with pytest.raises(ValueError, match=r"lack roles \['rejected'\]"):
        batch.with_reference({"chosen": torch.zeros(2)})


def _datamodule() -> PreferenceDataModule:
    cfg = OmegaConf.create({"kind": None, "packing": False, "batch_size": 2, "eval_batch_size": 2,
                            "shuffle": False, "num_workers": 0})  # fmt: skip
    head = get_loss_head("dpo")
    splits = Splits(datasets.Dataset.from_list(PAIRS), datasets.Dataset.from_list(PAIRS[:1]),
                    PreferenceCollator(head.roles, 0))  # fmt: skip
    return PreferenceDataModule(cfg, SimpleNamespace(pad_token_id=0), head, splits=splits)


def test_reference_columns_make_a_new_datamodule_and_leave_the_old_one_alone():
    cache = {
        "train": {"chosen": torch.tensor([-1.0, -2.0]), "rejected": torch.tensor([-3.0, -4.0])},
        "val": {"chosen": torch.tensor([-5.0]), "rejected": torch.tensor([-6.0])},
    }
    before = _datamodule()
    after = before.with_transform(ReferenceColumns(cache, ("chosen", "rejected"), source=Path("c.pt")))
    assert after is not before and isinstance(after.collator, ReferenceLogpsCollator)
    assert isinstance(before.collator, PreferenceCollator)
    assert REFERENCE_COLUMN.format(role="chosen") not in before.train_set.column_names
    assert REFERENCE_COLUMN.format(role="rejected") in after.val_set.column_names
    batch = next(iter(after.train_dataloader()))
    assert isinstance(batch, PaddedBatch) and batch.roles == ("chosen", "rejected")
    assert batch.reference_logps["rejected"].tolist() == [-3.0, -4.0]
    assert next(iter(after.val_dataloader())).reference_logps["chosen"].tolist() == [-5.0]
    assert next(iter(before.train_dataloader())).reference_logps is None


def test_a_cache_with_other_row_counts_is_a_named_error():
    cache = {"train": {"chosen": torch.zeros(3), "rejected": torch.zeros(3)}}
    with pytest.raises(ValueError, match=r"reference cache c\.pt: train/chosen has 3 rows, data has 2"):
        _datamodule().with_transform(ReferenceColumns(cache, ("chosen", "rejected"), source=Path("c.pt")))
