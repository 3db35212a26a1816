"""`python -m ifpo.scale.export CKPT OUT` turns a training checkpoint into a loadable HF folder."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ifpo.scale.export import export_checkpoint
from ifpo.training.pipeline import train
from tests.hydra_helpers import compose_config


def test_exported_folder_reproduces_the_trained_policy(tmp_path, shared_data_dir):
    cfg = compose_config(
        "train", ["debug=fast", "trainer.max_steps=1", "data.batch_size=2"], output_dir=tmp_path / "run", data_dir=shared_data_dir
    )
    train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    out = export_checkpoint(ckpt, tmp_path / "hf")
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    trained = state["policy.model.layers.0.self_attn.q_proj.weight"]
    assert torch.equal(model.model.layers[0].self_attn.q_proj.weight, trained)
    ids = tokenizer("tea gives calm joy.", return_tensors="pt")["input_ids"]
    assert model(ids).logits.shape[-1] == len(tokenizer)
