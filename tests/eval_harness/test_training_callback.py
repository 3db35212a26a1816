"""The held-out eval callback in a real 2-step training run, and evaluating that run's checkpoint."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from omegaconf import open_dict

from ifpo.eval.callback import HeldoutEvalCallback
from ifpo.eval.runner import evaluate
from ifpo.models.checkpoint import CheckpointError, load_policy, policy_state_dict
from ifpo.training.pipeline import train
from tests.eval_harness.conftest import eval_config
from tests.hydra_helpers import compose_config

FAST = [
    "debug=fast",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "data.batch_size=2",
    "data.eval_batch_size=4",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data_dir):
    out = tmp_path_factory.mktemp("train")
    cfg = compose_config("train", FAST, output_dir=out, data_dir=shared_data_dir)
    with open_dict(cfg):
        cfg.callbacks.heldout_eval = {
            "_target_": "ifpo.eval.callback.HeldoutEvalCallback",
            "every_n_steps": 1,
            "num_examples": 3,
            "max_new_tokens": 4,
            "batch_size": 3,
        }
    metrics = train(cfg)
    return out, cfg, metrics


def test_callback_logs_heldout_accuracies_each_step(trained):
    out, _, metrics = trained
    for name in ("heldout/prompt_strict", "heldout/instruction_strict", "heldout/instruction_loose"):
        assert name in metrics and 0.0 <= metrics[name] <= 1.0
    assert any(name.startswith("heldout/kind/") for name in metrics)
    with open(out / "csv" / "version_0" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    logged_steps = sorted({int(r["step"]) for r in rows if r.get("heldout/prompt_strict")})
    assert logged_steps == [1, 2]  # every step; the end of training (step 2) is not evaluated twice
    saved = json.loads((out / "metrics.json").read_text())["metrics"]
    assert math.isclose(saved["heldout/instruction_strict"], metrics["heldout/instruction_strict"])


def test_callback_runs_at_end_when_steps_do_not_divide(monkeypatch):
    callback = HeldoutEvalCallback(every_n_steps=5)
    calls = []
    monkeypatch.setattr(callback, "run", lambda trainer, module: calls.append(trainer.global_step))

    class FakeTrainer:
        global_step = 0

    trainer = FakeTrainer()
    for step in (1, 2, 3):
        trainer.global_step = step
        callback.on_train_batch_end(trainer, None, None, None, step)
    callback.on_train_end(trainer, None)
    assert calls == [3]
    with pytest.raises(ValueError, match="every_n_steps"):
        HeldoutEvalCallback(every_n_steps=0)


def test_checkpoint_policy_weights_are_what_eval_loads(trained, tmp_path):
    out, train_cfg, _ = trained
    ckpt = out / "checkpoints" / "last.ckpt"
    state = policy_state_dict(ckpt)
    model, _ = load_policy(train_cfg.model, ckpt)
    loaded = model.state_dict()
    assert set(state) <= set(loaded)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    fresh, _ = load_policy(train_cfg.model)  # random init differs, so the weights really came from the file
    assert not all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())
    cfg = eval_config(
        tmp_path,
        [
            "+eval=synthetic",
            f"eval.checkpoint={ckpt}",
            "eval.num_examples=2",
            "eval.generation.max_new_tokens=4",
            "eval.chart=false",
        ],
    )
    result = evaluate(cfg)
    assert result.metrics["num_prompts"] == 2 and len(result.examples) == 2
    # The same weights exported as an HF folder (model=hf, the default) generate the same greedy answers.
    model, tokenizer = load_policy(train_cfg.model, ckpt)
    model.save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    hf_cfg = eval_config(
        tmp_path / "hf_run",
        [
            "+eval=synthetic",
            f"model.name_or_path={tmp_path / 'hf'}",
            "model.dtype=float32",
            "eval.num_examples=2",
            "eval.generation.max_new_tokens=4",
            "eval.chart=false",
        ],
    )
    from_folder = evaluate(hf_cfg)
    assert [e["response"] for e in from_folder.examples] == [e["response"] for e in result.examples]


def test_bad_checkpoints_are_named(tmp_path, trained):
    _, train_cfg, _ = trained
    with pytest.raises(CheckpointError, match="not found"):
        policy_state_dict(tmp_path / "nope.ckpt")
    torch.save({"state_dict": {"model.x": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match=r"no 'policy\.\*' weights.*\['model'\]"):
        policy_state_dict(tmp_path / "other.ckpt")
    torch.save(
        {"state_dict": {"policy.model.embed_tokens.weight": torch.zeros(3, 3)}}, tmp_path / "shape.ckpt"
    )
    with pytest.raises(CheckpointError, match="do not fit"):
        load_policy(train_cfg.model, tmp_path / "shape.ckpt")
