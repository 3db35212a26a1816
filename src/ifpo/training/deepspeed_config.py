"""The DeepSpeed config dict, generated from the Hydra `strategy.deepspeed` node.

Every DeepSpeed field stays overridable from the command line; this module only turns the
node into plain data and resolves the "auto" bucket sizes from the model's hidden size with
the same rules transformers' Trainer uses, so one YAML suits 8B and 70B models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from ifpo.config.plain import to_plain

#: "auto" rules (elements), as in transformers' HfTrainerDeepSpeedConfig.
AUTO_SIZES = {
    "reduce_bucket_size": lambda hidden: hidden * hidden,
    "stage3_prefetch_bucket_size": lambda hidden: int(0.9 * hidden * hidden),
    "stage3_param_persistence_threshold": lambda hidden: 10 * hidden,
}


def deepspeed_config(node: Mapping[str, Any] | DictConfig, hidden_size: int | None) -> dict[str, Any]:
    """A plain DeepSpeed config dict with "auto" sizes resolved from `hidden_size`.

    Top-level "auto" values (e.g. `bf16: auto`) are dropped so Lightning fills them from the
    trainer's precision; "auto" sizes with no known hidden size are an error naming the field.
    """
    config: dict[str, Any] = to_plain(node) or {}
    config = {k: v for k, v in config.items() if v != "auto"}
    zero = config.get("zero_optimization") or {}
    for key, rule in AUTO_SIZES.items():
        if zero.get(key) == "auto":
            if hidden_size is None:
                raise ValueError(
                    f"strategy.deepspeed.zero_optimization.{key}=auto needs the model's hidden size: "
                    "set model.arch or model.config, or give a number"
                )
            zero[key] = rule(int(hidden_size))
    for key in ("reduce_bucket_size", "allgather_bucket_size", "stage3_prefetch_bucket_size",
                "stage3_param_persistence_threshold", "stage3_max_live_parameters",
                "stage3_max_reuse_distance", "sub_group_size"):  # fmt: skip
        if isinstance(zero.get(key), float):
            zero[key] = int(zero[key])  # 1e8 on the command line is a float; DeepSpeed wants ints
    return config


def zero_stage(config: Mapping[str, Any] | None) -> int:
    return int(((config or {}).get("zero_optimization") or {}).get("stage", 0))


def offload_device(config: Mapping[str, Any] | None, what: str) -> str:
    """'cpu'/'nvme' if `what` ('offload_optimizer' or 'offload_param') is offloaded, else 'none'."""
    section = ((config or {}).get("zero_optimization") or {}).get(what) or {}
    return str(section.get("device") or "none")
