"""Export the trained policy as a Hugging Face folder (safetensors + config + tokenizer).

Works for a plain, a DDP and a ZeRO-3-partitioned policy: parameters are gathered one at a
time (never the whole model on a GPU) into a CPU state dict on rank 0, which loads it into a
model skeleton built on the meta device. LoRA adapters are merged into the base weights with
PEFT's `merge_and_unload`, so the folder is a plain model that `from_pretrained` loads.
Every rank must call :func:`export_hf` (the gathers are collective); rank 0 writes.
Rank 0 needs host RAM for one full copy of the weights (about 140 GB for 70B in bf16).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

from ifpo.scale.lora import lora_config, peft_enabled


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
    """Write `policy` (LoRA merged) to `out_dir`; returns the folder on rank 0, None elsewhere."""
    state = gathered_state_dict(policy)
    if _rank() != 0:
        return None
    base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    config = base.config
    dtype = next(iter(state.values())).dtype if state else torch.float32
    with torch.device("meta"):
        skeleton: Any = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if peft_enabled(peft_cfg):
        from peft import get_peft_model

        skeleton = get_peft_model(skeleton, lora_config(peft_cfg))
    result = skeleton.load_state_dict(state, strict=False, assign=True)
    tied = set(getattr(base, "_tied_weights_keys", None) or [])
    missing = [k for k in result.missing_keys if not any(k.endswith(t) for t in tied)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"export: state dict does not match the model (missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    if peft_enabled(peft_cfg):
        skeleton = skeleton.merge_and_unload()  # W <- W + (alpha / r) * B @ A, adapters removed
    skeleton.tie_weights()
    meta = [n for n, p in skeleton.named_parameters() if p.is_meta]
    if meta:
        raise ValueError(f"export: parameters never received weights: {meta[:5]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skeleton.save_pretrained(out, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Export a single-file training checkpoint (`last.ckpt`) to a Hugging Face folder.

    The model is rebuilt from the `model` config saved in the checkpoint. A DeepSpeed
    checkpoint is a folder: consolidate it first with the `zero_to_fp32.py` that DeepSpeed
    writes into it, or export in-process with :func:`export_hf`.
    """
    from ifpo.eval.checkpoint import CheckpointError, checkpoint_model_config, load_policy

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        raise CheckpointError(
            f"{checkpoint} is a sharded DeepSpeed checkpoint folder; run "
            f"`python {checkpoint}/zero_to_fp32.py {checkpoint} consolidated.ckpt` first"
        )
    model_cfg = checkpoint_model_config(checkpoint)
    if model_cfg is None:
        raise CheckpointError(f"{checkpoint}: no saved model config (hyper_parameters.model); not an ifpo checkpoint?")
    model, tokenizer = load_policy(model_cfg, checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Export a training checkpoint to a Hugging Face folder.")
    parser.add_argument("checkpoint", help="a Lightning .ckpt written by train.py")
    parser.add_argument("out_dir", help="folder to write (safetensors, config, tokenizer)")
    args = parser.parse_args()
    print(f"exported to {export_checkpoint(args.checkpoint, args.out_dir)}")


if __name__ == "__main__":
    main()
