"""`python -m ifpo.scale.export CKPT OUT` and `export.at_end=true` write a folder from_pretrained loads.

Single-file checkpoints here; the ZeRO-3 checkpoint folders (full and LoRA) are exported from the
real 2-rank run in test_zero3_cpu.py.
"""

import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoTokenizer

from ifpo.scale.export import ExportError, export_checkpoint
from ifpo.training.pipeline import build, train
from tests.hydra_helpers import ROOT, compose_config

IDS = torch.tensor([list(range(5, 40))])
LORA = ["peft=lora", "peft.r=4", "peft.alpha=8", "peft.dropout=0.0", "ref=adapter"]


def _logits(model: torch.nn.Module) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits.float()


def test_exported_folder_reproduces_the_trained_policy(tmp_path, shared_data_dir):
    cfg = compose_config(
        "train",
        ["debug=fast", "trainer.max_steps=1", "data.batch_size=2"],
        output_dir=tmp_path / "run",
        data_dir=shared_data_dir,
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


def test_lora_checkpoint_exports_merged_with_the_trained_logits(tmp_path, shared_data_dir):
    cfg = compose_config(
        "train", ["debug=fast", "trainer.max_steps=2", "data.batch_size=2", "trainer.limit_val_batches=0",
        *LORA],
        output_dir=tmp_path / "run", data_dir=shared_data_dir,
    )  # fmt: skip
    module, datamodule, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    trained = _logits(module.policy)
    with module.policy.disable_adapter():
        untrained = _logits(module.policy)
    assert not torch.allclose(trained, untrained, atol=1e-4)  # the adapters learned something

    # The real command, in a fresh process.
    done = subprocess.run(
        [sys.executable, "-m", "ifpo.scale.export", str(tmp_path / "run/checkpoints/last.ckpt"),
        str(tmp_path / "hf")],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    assert torch.allclose(_logits(loaded), trained, atol=1e-5)


def test_export_at_end_and_hydra_config_fallback(tmp_path, shared_data_dir):
    run = tmp_path / "run"
    cfg = compose_config(
        "train", ["debug=fast", "trainer.max_steps=1", "data.batch_size=2", "export.at_end=true", *LORA],
        output_dir=run, data_dir=shared_data_dir,
    )  # fmt: skip
    train(cfg)
    at_end = AutoModelForCausalLM.from_pretrained(run / "hf")
    assert (run / "hf" / "tokenizer.json").is_file()
    # A checkpoint without saved hyper-parameters: export reads the run folder's .hydra/config.yaml.
    ckpt = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    del ckpt["hyper_parameters"]
    torch.save(ckpt, run / "checkpoints/bare.ckpt")
    with pytest.raises(ExportError, match="no saved hyper-parameters"):
        export_checkpoint(run / "checkpoints/bare.ckpt", tmp_path / "hf_bare")
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    out = export_checkpoint(run / "checkpoints/bare.ckpt", tmp_path / "hf_bare")
    assert torch.allclose(_logits(AutoModelForCausalLM.from_pretrained(out)), _logits(at_end), atol=1e-5)


def test_incomplete_deepspeed_folder_is_refused_with_the_reason(tmp_path, capsys):
    from ifpo.scale.export import main

    (tmp_path / "last.ckpt" / "checkpoint").mkdir(parents=True)
    assert main([str(tmp_path / "last.ckpt"), str(tmp_path / "out")]) == 2
    assert "not a complete DeepSpeed checkpoint (no 'latest' file" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.ckpt"), str(tmp_path / "out")]) == 2
    assert "checkpoint not found" in capsys.readouterr().out


def test_lora_export_of_a_tied_embedding_model_keeps_the_head(tmp_path):
    """SmolLM2-style tie_word_embeddings: the merged export must keep lm_head tied (PEFT's merge used
    to see the meta skeleton's untied head, set tie_word_embeddings=False and drop lm_head.weight)."""
    from transformers import LlamaConfig

    from ifpo.models.export import export_hf
    from ifpo.models.lora import apply_lora

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    policy = apply_lora(AutoModelForCausalLM.from_config(config), {
        "enabled": True, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "bias": "none",
        "init_lora_weights": False})  # non-zero B: the merge changes the weights
    ids = torch.randint(0, 64, (1, 8))
    with torch.no_grad():
        expected = policy(ids).logits
    export_hf(policy, tmp_path / "hf", None, {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0,
                                             "target_modules": "all-linear", "bias": "none"})
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert reloaded.config.tie_word_embeddings
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, expected, atol=1e-5, rtol=1e-5)
