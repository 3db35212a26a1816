"""What a run writes into checkpoints/: one last.ckpt (never last-v1.ckpt); with LoRA only the
adapters and their optimizer state, never the frozen base; and a resume from it still works."""

from __future__ import annotations

import json

import torch

from ifpo.training.pipeline import train
from tests.hydra_helpers import compose_config

FAST = ["debug=fast", "trainer.max_steps=2", "trainer.val_check_interval=2", "data.batch_size=2",
        "data.eval_batch_size=4", "callbacks.resume_checkpoint.every_n_train_steps=1"]
LORA = ["peft=lora", "peft.r=4", "peft.alpha=8", "peft.dropout=0.0", "ref.mode=adapter"]


def _train(folder, data, overrides):
    return train(compose_config("train", FAST + overrides, output_dir=folder, data_dir=data))


def test_lora_checkpoint_holds_adapters_only_and_resumes(tmp_path, shared_data_dir):
    first = tmp_path / "first"
    _train(first, shared_data_dir, LORA)
    names = sorted(p.name for p in (first / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step000002.ckpt"]  # one last.ckpt, the top-1 file, nothing else
    state = torch.load(first / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    keys = list(state["state_dict"])
    assert keys and all("lora_" in k for k in keys), [k for k in keys if "lora_" not in k][:5]
    (optimizer,) = state["optimizer_states"]
    assert len(optimizer["state"]) == len(keys)  # Adam moments of the adapters only

    second = tmp_path / "second"
    _train(second, shared_data_dir, [*LORA, f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}", "trainer.max_steps=3",
                                     "trainer.val_check_interval=1"])
    assert json.loads((second / "metrics.json").read_text())["metrics"]["global_step"] == 3


def test_full_checkpoint_holds_the_policy_and_not_the_reference(tmp_path, shared_data_dir):
    _train(tmp_path, shared_data_dir, [])
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    assert any(k.startswith("policy.") for k in state["state_dict"])
    assert not any(k.startswith("reference.") for k in state["state_dict"])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt", "step000002.ckpt"]
