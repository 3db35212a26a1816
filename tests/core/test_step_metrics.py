"""Logged training metrics are exact over every micro-batch of each optimizer step (the first
included) under gradient accumulation, and the learning rate is one series: the rate each step applied."""

from __future__ import annotations

import csv

import pytest
import torch

from ifpo.training.pipeline import build
from tests.hydra_helpers import compose_config

ACCUMULATE, STEPS = 3, 2


def test_metrics_cover_all_micro_batches_and_lr_is_one_series(tmp_path, shared_data_dir, monkeypatch):
    cfg = compose_config(
        "train",
        [
            "debug=fast",
            "+experiment=tiny_dpo",
            f"trainer.max_steps={STEPS}",
            f"trainer.accumulate_grad_batches={ACCUMULATE}",
            "data.batch_size=2",
            "trainer.val_check_interval=2",
            "trainer.log_every_n_steps=1",
            "optim.warmup_ratio=0.5",
        ],
        output_dir=tmp_path,
        data_dir=shared_data_dir,
    )
    module, datamodule, trainer = build(cfg)
    micro: list[dict[str, torch.Tensor]] = []  # per-example values of every training micro-batch
    head_call = type(module.head).__call__

    def recording_head(self, logps, batch):
        out = head_call(self, logps, batch)
        if torch.is_grad_enabled():  # training, not validation
            micro.append({"loss": out.loss.detach().reshape(1).repeat(batch.batch_size), **out.metrics})
        return out

    monkeypatch.setattr(type(module.head), "__call__", recording_head)
    logged: dict[str, list[float]] = {}
    log = module.log

    def recording_log(name, value, *args, **kwargs):
        if name.startswith("train/"):
            logged.setdefault(name, []).append(float(value))
        return log(name, value, *args, **kwargs)

    monkeypatch.setattr(module, "log", recording_log)
    trainer.fit(module, datamodule=datamodule)
    assert len(micro) == ACCUMULATE * STEPS
    for name in (
        "loss",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "rewards/accuracies",
        "logps/chosen",
    ):
        expected = [
            torch.cat([m[name] for m in micro[s * ACCUMULATE : (s + 1) * ACCUMULATE]]).float().mean().item()
            for s in range(STEPS)
        ]
        assert logged[f"train/{name}"] == pytest.approx(expected, rel=1e-5), name
    # The learning rate each optimizer step applied (linear warmup over the first step here).
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert logged["train/lr"] == pytest.approx(
        [cfg.optim.lr * scheduler.lr_lambdas[0](s) for s in range(STEPS)]
    )
    assert logged["train/lr"][0] != logged["train/lr"][1]
    with open(tmp_path / "csv" / "version_0" / "metrics.csv") as f:
        header = next(csv.reader(f))
    assert [c for c in header if "lr" in c.replace("/", "-").split("-")] == ["train/lr"]
