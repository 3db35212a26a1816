"""Every loss option is checked by its head's schema before anything is loaded (issue 15, items 4-5)."""

import subprocess
import sys

import pytest

from ifpo.config.schema import LOSS_SCHEMAS, validate_loss_config
from ifpo.training.pipeline import build
from tests.hydra_helpers import ROOT, compose_config


@pytest.mark.parametrize(
    "overrides,field",
    [
        (["+loss.bta=0.2"], "loss.bta"),  # the spelling Hydra's own error message suggests
        (["loss=dpo", "+loss.gamma=0.5"], "loss.gamma"),  # an RPO option on the DPO head
        (["loss=sft", "+loss.beta=0.5"], "loss.beta"),
        (["loss=iopo", "+loss.variant=ipo"], "loss.variant"),
    ],
)
def test_unknown_loss_keys_are_refused(overrides, field):
    cfg = compose_config("train", overrides)
    with pytest.raises(ValueError, match=f"has no option {field}") as err:
        build(cfg)
    assert "its options are" in str(err.value)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["loss.beta=0"], "loss.beta must be > 0, got 0"),
        (["loss.beta=-0.1"], "loss.beta must be > 0"),
        (["loss=dpo", "loss.variant=ipo", "loss.beta=0"], "loss.beta must be > 0"),
        (["loss=iopo", "loss.beta=0"], "loss.beta must be > 0"),
        (["loss.gamma=-0.05"], "loss.gamma must be >= 0"),
        (["loss=dpo", "loss.label_smoothing=0.5"], r"loss.label_smoothing must be in \[0, 0.5\)"),
        (["loss=iopo", "loss.label_smoothing=-0.1"], "loss.label_smoothing must be in"),
        (["loss=dpo", "loss.sft_weight=-1"], "loss.sft_weight must be >= 0"),
    ],
)
def test_out_of_range_loss_values_fail_at_start(overrides, message):
    cfg = compose_config("train", overrides)
    with pytest.raises(ValueError, match=message):
        build(cfg)


@pytest.mark.parametrize("name", sorted(LOSS_SCHEMAS))
def test_every_shipped_loss_config_passes_its_schema(name):
    cfg = compose_config("train", [f"loss={name}"])
    checked = validate_loss_config(cfg.loss)
    assert type(checked) is LOSS_SCHEMAS[name]
    assert checked.name == name


def test_train_py_refuses_a_misspelled_loss_key_before_training(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "train.py",
            "+loss.bta=0.2",
            f"paths.output_dir={tmp_path}",
            f"paths.log_dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "has no option loss.bta" in done.stderr
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    "experiment", sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("[!_]*.yaml"))
)
def test_every_shipped_experiment_passes_its_loss_schema(experiment):
    cfg = compose_config("train", [f"+experiment={experiment}"])
    assert validate_loss_config(cfg.loss).name == cfg.loss.name
