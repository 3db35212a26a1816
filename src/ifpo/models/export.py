"""Write a policy as a Hugging Face folder (safetensors + config + tokenizer), LoRA merged.

The model-level half of export: gather the weights (one parameter at a time under ZeRO-3),
load them into a meta skeleton, merge LoRA, save. Training calls :func:`export_hf` at the end
(`export.at_end=true`); :mod:`ifpo.scale.export` reads checkpoints and calls
:func:`write_hf_folder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerBase

from ifpo.models.lora import lora_config, peft_enabled


class ExportError(ValueError):
    """A checkpoint cannot be exported: missing, unreadable, or not an ifpo training checkpoint."""


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def gathered_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full CPU copies of every parameter and persistent buffer on rank 0 ({} on other ranks)."""
    partitioned = any(hasattr(p, "ds_id") for p in model.parameters())
    state: dict[str, torch.Tensor] = {}
    rank0 = _rank() == 0
    for name, parameter in model.named_parameters():
        if partitioned:
            import deepspeed

            with deepspeed.zero.GatheredParameters([parameter], modifier_rank=None):
                if rank0:
                    state[name] = parameter.data.detach().cpu().clone()
        elif rank0:
            state[name] = parameter.detach().cpu().clone()
    if rank0:
        keys = set(model.state_dict().keys())
        state.update(
            {n: b.detach().cpu().clone() for n, b in model.named_buffers() if n in keys and n not in state}
        )
    return state


def export_hf(
    policy: torch.nn.Module,
    out_dir: str | Path,
    tokenizer: PreTrainedTokenizerBase | None,
    peft_cfg: Mapping[str, Any] | None = None,
) -> Path | None:
    """Write `policy` (LoRA merged) to `out_dir`; every rank must call it (the gathers are collective).

    Returns the folder on rank 0, None elsewhere.
    """
    state = gathered_state_dict(policy)
    if _rank() != 0:
        return None
    base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    dtype = next(iter(state.values())).dtype if state else torch.float32
    return write_hf_folder(state, base.config, peft_cfg, out_dir, tokenizer, dtype, base.generation_config)


def write_hf_folder(
    state: Mapping[str, torch.Tensor],
    config: Any,
    peft_cfg: Mapping[str, Any] | None,
    out_dir: str | Path,
    tokenizer: PreTrainedTokenizerBase | None,
    dtype: torch.dtype,
    generation_config: GenerationConfig | None = None,
    base_source: str | None = None,
) -> Path:
    """Load a policy state dict (PEFT-wrapped names when LoRA is on) into a meta skeleton, merge, save.

    A LoRA checkpoint of a pretrained base holds only the adapters (the frozen base is never
    saved): then the base is loaded from ``base_source`` (the run's ``model.name_or_path``) and
    only the adapter weights must come from ``state``. ``generation_config`` (the source model's:
    its eos id list stops generation) travels along.
    """
    # PEFT names a wrapped linear's frozen weight "...base_layer.weight": none saved = adapters only.
    adapters_only = peft_enabled(peft_cfg) and not any(".base_layer." in k for k in state)
    if adapters_only:
        if not base_source:
            raise ExportError(
                "export: an adapter-only LoRA checkpoint needs the base model's model.name_or_path"
            )
        skeleton: Any = AutoModelForCausalLM.from_pretrained(base_source, dtype=dtype)
    else:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tied = set(getattr(skeleton, "_tied_weights_keys", None) or [])
    tied_map = getattr(skeleton, "_tied_weights_keys", None)
    tied_pairs = dict(tied_map) if isinstance(tied_map, dict) else {}  # target -> source (transformers 5)
    if peft_enabled(peft_cfg):
        from peft import get_peft_model

        skeleton = get_peft_model(skeleton, lora_config(peft_cfg))
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    result = skeleton.load_state_dict(state, strict=False, assign=not adapters_only)
    missing = [k for k in result.missing_keys if not any(k.endswith(t) for t in tied)]
    if adapters_only:
        missing = [k for k in missing if "lora_" in k]  # the rest came from base_source
    if missing or result.unexpected_keys:
        raise ExportError(
            f"export: state dict does not match the model (missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})"
        )
    base = skeleton.get_base_model() if hasattr(skeleton, "get_base_model") else skeleton
    for target, source in tied_pairs.items():
        # load_state_dict(assign=True) replaced the source Parameter and left the tied target on the
        # meta skeleton's old one. Re-tie before merging: PEFT's merge sees untied embeddings and
        # sets tie_word_embeddings=False, and the saved folder would then lack lm_head.weight.
        if base.get_parameter(target).is_meta:
            owner, _, leaf = target.rpartition(".")
            setattr(base.get_submodule(owner), leaf, base.get_parameter(source))
    if peft_enabled(peft_cfg):
        skeleton = skeleton.merge_and_unload()  # W <- W + (alpha / r) * B @ A, adapters removed
    skeleton.tie_weights()
    meta = [n for n, p in skeleton.named_parameters() if p.is_meta]
    if meta:
        raise ExportError(f"export: parameters never received weights: {meta[:5]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if generation_config is not None:
        skeleton.generation_config = generation_config
    skeleton.save_pretrained(out, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out
