"""Overrides shared by the ZeRO-3 CPU worker and the single-process runs it is compared with."""

from __future__ import annotations

import json
from pathlib import Path

# Smaller than the tiny default (4 layers, hidden 256) so two CPU ranks run in seconds.
TINY2 = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 1024, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
    "initializer_range": 0.02, "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1,
    "pad_token_id": 2,
}  # fmt: skip

HEADS = {"dpo": ["experiment=tiny_dpo"], "iopo": ["experiment=tiny_iopo"], "rpo": []}


def write_tiny2(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(TINY2))
    return folder


def write_tiny2_pretrained(folder: Path) -> Path:
    """A saved random-init tiny2 model: both the ZeRO-3 and the single-process runs load these
    exact weights (random init under ZeRO-3 runs on rank 0 with another RNG stream)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    if not (folder / "model.safetensors").exists():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(
            LlamaConfig(**{k: v for k, v in TINY2.items() if k != "architectures"})
        )
        model.save_pretrained(folder, safe_serialization=True)
    return folder


def head_overrides(head: str) -> list[str]:
    return list(HEADS[head])


def shared_overrides(tiny: str | Path, devices: int, pretrained: str | Path | None = None) -> list[str]:
    """Same data order and global batch for 2 ranks x 2 examples and 1 process x 4 examples."""
    per_device = 4 // devices
    strategy = ["strategy=zero3", "strategy.cpu_test=true"] if devices > 1 else ["strategy=single"]
    return strategy + [
        "debug=fast", f"model.config={tiny}", f"model.name_or_path={pretrained or 'null'}",
        "trainer.accelerator=cpu", f"trainer.devices={devices}",
        f"data.batch_size={per_device}", "data.shuffle=false", "data.synthetic.num_train_tasks=12",
        "data.max_length=256", "data.max_prompt_length=192",
        "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "+trainer.enable_progress_bar=false",
        "callbacks.model_checkpoint.monitor=null", "callbacks.progress_bar=null",
        "optim.warmup_ratio=0.0",
    ]  # fmt: skip
