"""The reference model for ref.mode=copy: built as its own model, never a deepcopy.

Never a deepcopy/state_dict of a policy that ZeRO-3 may already have partitioned: pretrained
weights load from the same files; a randomly initialised policy is copied parameter by
parameter, each gathered on its own under ZeRO-3, so no rank ever holds the whole model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ifpo.models.loading import build_causal_lm


def _partitioned(model: torch.nn.Module) -> bool:
    return any(hasattr(p, "ds_id") for p in model.parameters())


def copy_parameters(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """target <- source, one parameter at a time; under ZeRO-3 each pair is gathered on its own."""
    src, dst = dict(source.named_parameters()), dict(target.named_parameters())
    if src.keys() != dst.keys():
        raise ValueError(f"reference and policy differ in parameters: {sorted(src.keys() ^ dst.keys())[:5]}")
    if not (_partitioned(source) or _partitioned(target)):
        target.load_state_dict(source.state_dict())
        return
    import deepspeed

    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    with torch.no_grad():
        for name, p in src.items():
            with deepspeed.zero.GatheredParameters([p, dst[name]], modifier_rank=0):
                if rank == 0:
                    dst[name].data.copy_(p.data)


def build_reference_copy(
    policy: torch.nn.Module | None, model_cfg: Mapping[str, Any], ref_cfg: Mapping[str, Any]
) -> torch.nn.Module:
    """The reference model for ref.mode=copy (not yet frozen)."""
    if ref_cfg.get("name_or_path"):
        return build_causal_lm(model_cfg, ref_cfg["name_or_path"])
    reference = build_causal_lm(model_cfg)
    if not model_cfg.get("name_or_path"):  # random init: start from exactly the policy's weights
        if policy is None:
            raise ValueError("a randomly initialised reference needs the policy to copy from")
        copy_parameters(policy, reference)
    return reference
