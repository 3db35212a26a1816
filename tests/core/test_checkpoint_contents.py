"""What a run writes into checkpoints/: one last.ckpt (never last-v1.ckpt); with LoRA on a pretrained
base only the adapters and their optimizer state, never the frozen base; resume and evaluation
(base from model.name_or_path + the adapters, merged) still work."""

from __future__ import annotations

import json

import pytest
import torch

from ifpo.models.checkpoint import checkpoint_model_config, load_policy
from ifpo.training.pipeline import build, train
from tests.hydra_helpers import compose_config
from tests.scale.zero3_common import write_tiny2, write_tiny2_pretrained

FAST = ["debug=fast", "trainer.max_steps=2", "trainer.val_check_interval=2", "data.batch_size=2",
        "data.eval_batch_size=4", "callbacks.resume_checkpoint.every_n_train_steps=1"]
LORA = ["peft=lora", "peft.r=4", "peft.alpha=8", "peft.dropout=0.0", "ref.mode=adapter"]


def _train(folder, data, overrides):
    return train(compose_config("train", FAST + overrides, output_dir=folder, data_dir=data))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny2")
    return [f"model.config={write_tiny2(base / 'config')}",
            f"model.name_or_path={write_tiny2_pretrained(base / 'weights')}"]


def test_lora_checkpoint_holds_adapters_only_resumes_and_evaluates(tmp_path, shared_data_dir, pretrained):
    first = tmp_path / "first"
    cfg = compose_config("train", FAST + LORA + pretrained, output_dir=first, data_dir=shared_data_dir)
    module, datamodule, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    names = sorted(p.name for p in (first / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step000002.ckpt"]  # one last.ckpt, the top-1 file, nothing else
    ckpt = first / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    keys = list(state["state_dict"])
    assert keys and all("lora_" in k for k in keys), [k for k in keys if "lora_" not in k][:5]
    (optimizer,) = state["optimizer_states"]
    assert len(optimizer["state"]) == len(keys)  # Adam moments of the adapters only

    # eval.py / export rebuild the base from model.name_or_path and merge the adapters.
    ids = torch.tensor([list(range(5, 29))])
    module.eval()
    with torch.no_grad():
        trained = module.policy(input_ids=ids).logits
        loaded, _ = load_policy(checkpoint_model_config(ckpt), ckpt)
        torch.testing.assert_close(loaded(input_ids=ids).logits, trained, atol=1e-5, rtol=1e-5)
    assert not any("lora_" in n for n, _ in loaded.named_parameters())

    second = tmp_path / "second"
    _train(second, shared_data_dir, [*LORA, *pretrained, f"ckpt_path={ckpt}", "trainer.max_steps=3",
                                     "trainer.val_check_interval=1"])
    assert json.loads((second / "metrics.json").read_text())["metrics"]["global_step"] == 3


def test_lora_on_a_random_init_base_keeps_the_base(tmp_path, shared_data_dir):
    _train(tmp_path, shared_data_dir, LORA)  # nothing to rebuild it from: it must stay in the file
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert any("base_layer" in k for k in state["state_dict"]) and any(
        "lora_" in k for k in state["state_dict"]
    )


def test_full_checkpoint_holds_the_policy_and_not_the_reference(tmp_path, shared_data_dir):
    _train(tmp_path, shared_data_dir, [])
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    assert any(k.startswith("policy.") for k in state["state_dict"])
    assert not any(k.startswith("reference.") for k in state["state_dict"])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt", "step000002.ckpt"]
