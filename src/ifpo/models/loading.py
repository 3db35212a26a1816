"""Build the policy/reference models and the tokenizer from the `model` config group.

`model.name_or_path` loads pretrained weights with `from_pretrained` (local folder or hub
id); `model.config` instead builds a randomly initialised model from an architecture
config, which is how the embedded tiny default and the tests run without any download.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ifpo.models.attn_choice import resolve_attn_implementation

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    value = cfg.get(key, default) if isinstance(cfg, Mapping) else getattr(cfg, key, default)
    return getattr(value, "value", value)  # enums from structured configs -> their string


def load_tokenizer(model_cfg: Any) -> PreTrainedTokenizerBase:
    """The tokenizer named by model.tokenizer, else the one saved with model.name_or_path."""
    source = _get(model_cfg, "tokenizer") or _get(model_cfg, "name_or_path")
    if not source:
        raise ValueError("set model.tokenizer or model.name_or_path: no tokenizer to load")
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=bool(_get(model_cfg, "trust_remote_code")))
    if tokenizer.pad_token_id is None:
        # Pad positions are masked out of attention and loss, so EOS is a safe pad token.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_causal_lm(model_cfg: Any, name_or_path: str | None = None) -> PreTrainedModel:
    """Load pretrained weights, or random-init from `model.config` when no weights are named."""
    dtype = DTYPES[_get(model_cfg, "dtype", "float32")]
    attn = resolve_attn_implementation(_get(model_cfg, "attn_implementation", "sdpa"), _get(model_cfg, "dtype", "float32"))
    trust = bool(_get(model_cfg, "trust_remote_code"))
    source = name_or_path or _get(model_cfg, "name_or_path")
    if source:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation=attn, trust_remote_code=trust)
    else:
        arch = _get(model_cfg, "config")
        if not arch:
            raise ValueError("set model.name_or_path (pretrained) or model.config (random init)")
        config = AutoConfig.from_pretrained(arch, trust_remote_code=trust)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn, trust_remote_code=trust)
    if _get(model_cfg, "gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Eval mode, no gradients: what a reference model must be."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the decoder that returns hidden states, the LM head), unwrapping PEFT if present."""
    if hasattr(model, "get_base_model"):  # peft.PeftModel
        model = model.get_base_model()
    head = model.get_output_embeddings()
    decoder = getattr(model, model.base_model_prefix, None)
    if head is None or decoder is None or decoder is model:
        raise TypeError(f"{type(model).__name__} does not expose a decoder and an LM head (needed for log-probs)")
    return decoder, head
