"""LoRA adapters on the policy through PEFT, also under ZeRO-3.

Under ZeRO-3 the model is built inside `deepspeed.zero.Init`, which partitions every new
parameter right after its module's __init__; PEFT's own initialisation (B = 0) would then
write into empty placeholders. The adapters are therefore created outside zero.Init (they are
small) and DeepSpeed partitions them when the engine is initialised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model


def lora_config(peft_cfg: Mapping[str, Any]) -> LoraConfig:
    targets = peft_cfg.get("target_modules", "all-linear")
    return LoraConfig(
        r=int(peft_cfg["r"]),
        lora_alpha=int(peft_cfg["alpha"]),
        lora_dropout=float(peft_cfg.get("dropout", 0.0)),
        target_modules=targets if isinstance(targets, str) else list(targets),
        bias=str(peft_cfg.get("bias", "none")),
        init_lora_weights=bool(peft_cfg.get("init_lora_weights", True)),
        task_type="CAUSAL_LM",
    )


@contextlib.contextmanager
def outside_zero_init() -> Iterator[None]:
    """Suspend an active deepspeed.zero.Init (no-op without DeepSpeed or outside one)."""
    try:
        from deepspeed.runtime.zero import partition_parameters as pp
    except ImportError:  # deepspeed not installed
        yield
        return
    active = pp.zero_init_context > 0 and pp.top_level_context is not None
    if active:
        pp.shutdown_init_context()
    try:
        yield
    finally:
        if active:
            pp.restore_init_context()


def peft_enabled(peft_cfg: Mapping[str, Any] | None) -> bool:
    return bool(peft_cfg and peft_cfg.get("enabled", False))


def apply_lora(model: torch.nn.Module, peft_cfg: Mapping[str, Any]) -> PeftModel:
    """Wrap `model` with fresh LoRA adapters; only adapter weights stay trainable."""
    with outside_zero_init():
        return get_peft_model(model, lora_config(peft_cfg))
