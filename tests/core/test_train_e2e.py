"""End to end: each head trains a few steps through the real pipeline; resume; config errors."""

import csv
import json
import math

import pytest
import torch
from hydra.errors import ConfigCompositionException

from ifpo.training.pipeline import build, train
from tests.hydra_helpers import compose_config

FAST = [
    "debug=fast",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "data.batch_size=2",
    "data.eval_batch_size=4",
]


def _run(tmp_path, shared_data_dir, overrides):
    cfg = compose_config("train", FAST + list(overrides), output_dir=tmp_path, data_dir=shared_data_dir)
    metrics = train(cfg)
    return cfg, metrics


@pytest.mark.parametrize(
    "experiment,expected",
    [
        ([], "val/rewards/target_margin"),  # the default: RPO
        (["+experiment=tiny_dpo"], "val/rewards/margins"),
        (["+experiment=tiny_iopo"], "val/rewards/r21"),
        (["+experiment=tiny_sft"], "val/sft/nll"),
    ],
)
def test_each_head_trains_end_to_end(tmp_path, shared_data_dir, experiment, expected):
    _, metrics = _run(tmp_path, shared_data_dir, experiment)
    assert expected in metrics and math.isfinite(metrics[expected])
    assert math.isfinite(metrics["train/loss"])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"]["global_step"] == 2
    with open(tmp_path / "csv" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(row.get("train/loss") for row in rows)
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "config_tree.log").exists()


@pytest.mark.parametrize("experiment", [[], ["+experiment=tiny_dpo"], ["+experiment=tiny_iopo"]])
def test_loss_is_ln2_when_policy_equals_reference(tmp_path, shared_data_dir, experiment):
    cfg = compose_config(
        "train",
        FAST + experiment + ["loss.gamma=0.0"] * (not experiment),
        output_dir=tmp_path,
        data_dir=shared_data_dir,
    )
    module, datamodule, _ = build(cfg)
    datamodule.setup("fit")
    module.configure_model()
    batch = next(iter(datamodule.train_dataloader()))
    with torch.no_grad():
        out = module.head(module.compute_logps(batch), batch)
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert all(not p.requires_grad for p in module.reference.parameters())


def test_resume_continues_at_saved_step_without_reference_in_checkpoint(tmp_path, shared_data_dir):
    first = tmp_path / "first"
    _run(first, shared_data_dir, [])
    ckpt_path = first / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    assert not any(k.startswith("reference.") for k in state["state_dict"])
    assert any(k.startswith("policy.") for k in state["state_dict"])
    second = tmp_path / "second"
    _run(
        second,
        shared_data_dir,
        [f"ckpt_path={ckpt_path}", "trainer.max_steps=4", "trainer.val_check_interval=1"],
    )
    saved = json.loads((second / "metrics.json").read_text())
    assert saved["metrics"]["global_step"] == 4
    with open(second / "csv" / "version_0" / "metrics.csv") as f:
        steps = sorted({int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")})
    assert steps and steps[0] >= 2  # no step before the checkpoint was re-run


def test_optimizer_holds_only_policy_parameters(tmp_path, shared_data_dir):
    cfg = compose_config("train", FAST, output_dir=tmp_path, data_dir=shared_data_dir)
    module, datamodule, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    optimizer = trainer.optimizers[0]
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in module.policy.parameters()}
    assert not in_optimizer & {id(p) for p in module.reference.parameters()}


@pytest.mark.parametrize(
    "override,message",
    [
        ("loss.bta=0.2", "bta"),
        ("loss.variant=kto", "expected one of [sigmoid, ipo, hinge]"),
        ("data.on_error=ignore", "expected one of [raise, skip]"),
        ("model.dtype=float8", "expected one of [float32, bfloat16, float16]"),
        ("data.batch_size=eight", "data.batch_size"),
    ],
)
def test_config_typos_and_bad_values_fail_at_start(override, message):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config("train", [override])
    text = str(err.value) + str(err.value.__cause__)
    assert message in text


def test_heads_refuse_mismatched_data_kind(tmp_path, shared_data_dir):
    cfg = compose_config(
        "train", FAST + ["loss=iopo", "data.kind=pair"], output_dir=tmp_path, data_dir=shared_data_dir
    )
    with pytest.raises(ValueError, match="data.kind=pair but loss=iopo trains on quad records"):
        build(cfg)
