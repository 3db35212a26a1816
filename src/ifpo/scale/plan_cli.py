"""`python train.py ... plan=true`: the memory planner for the composed training config.

Maps the config (cluster shape, strategy and offload, reference mode, LoRA rank, micro-batch
in sequences, max_length, gradient checkpointing, log-prob chunk) to PlanSettings, prints the
planner table with the verdict and the smallest cluster, and exits without training. The
architecture comes from `model.arch` (an ArchSpec preset name or a dict of shape numbers) or
from the local config.json of `model.config`, so nothing is downloaded or built.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from ifpo.config.plain import to_plain
from ifpo.models.architectures import ALL_LINEAR, arch_from_model_cfg
from ifpo.scale.planner import PlanSettings, format_plan, plan, sequences_per_forward
from ifpo.training.deepspeed_config import offload_device

log = logging.getLogger(__name__)


def plan_settings(cfg: DictConfig) -> PlanSettings:
    """PlanSettings for a composed training config."""
    strategy = cfg.get("strategy") or {}
    name = str(strategy.get("name", "single"))
    ds = to_plain(strategy.get("deepspeed"))
    deepspeed = name in ("zero3", "zero3_offload")
    peft = cfg.get("peft") or {}
    lora = bool(peft.get("enabled", False))
    targets = peft.get("target_modules", "all-linear") if lora else "all-linear"
    cluster = cfg.get("cluster") or {}
    devices = cfg.trainer.get("devices", 1)
    model = cfg.model
    dtype = str(model.get("dtype", "bfloat16"))
    return PlanSettings(
        nodes=int(cfg.trainer.get("num_nodes", 1)),
        gpus_per_node=int(devices) if str(devices).isdigit() else int(cluster.get("gpus_per_node", 8)),
        gpu_memory_gib=float(cluster.get("gpu_memory_gib", 80.0)),
        zero_stage=3 if deepspeed else 0,
        offload_optimizer="cpu" if deepspeed and offload_device(ds, "offload_optimizer") == "cpu" else "none",
        offload_params="cpu" if deepspeed and offload_device(ds, "offload_param") == "cpu" else "none",
        reference=str(cfg.ref.mode) if _needs_reference(cfg) else "none",
        lora_rank=int(peft.get("r", 0)) if lora else 0,
        lora_targets=ALL_LINEAR if targets == "all-linear" else tuple(targets),
        micro_batch=sequences_per_forward(int(cfg.data.batch_size), str(cfg.loss.name)),
        seq_len=int(cfg.data.max_length),
        gradient_checkpointing=bool(model.get("gradient_checkpointing", False)),
        flash_attention=str(model.get("attn_implementation", "sdpa")) != "eager",
        logprob_chunk_tokens=int(model.get("logprob_chunk_size", 1024)) or None,
        param_bytes=4 if dtype == "float32" else 2,
        activation_bytes=4 if dtype == "float32" else 2,
        grad_bytes=4 if dtype == "float32" else 2,
        cpu_memory_gib=cluster.get("cpu_memory_gib"),
        max_live_parameters=int((ds.get("zero_optimization") or {}).get("stage3_max_live_parameters", 1e9)),
    )


def _needs_reference(cfg: DictConfig) -> bool:
    return str(cfg.loss.name) != "sft" and str(cfg.ref.mode) != "none"


def run_plan(cfg: DictConfig) -> dict[str, float]:
    """Print the plan for `cfg` and return its headline figures (for sweepers and tests)."""
    arch = arch_from_model_cfg(cfg.model)
    result = plan(arch, plan_settings(cfg))
    print(format_plan(result), flush=True)
    return {
        "plan/total_gib": result.total,
        "plan/fits": float(result.fits),
        "plan/smallest_nodes": float(result.smallest_nodes or 0),
        "plan/cpu_per_node_gib": result.cpu_per_node,
        "plan/host_per_node_gib": result.host_per_node,
        "plan/slurm_mem_gb": float(result.slurm_mem_gb),
    }


def plan_or_train(cfg: DictConfig) -> dict[str, float]:
    """What `python train.py` runs: plan=true prints the memory plan and trains nothing; else train.

    The dispatch lives here, above training, so the training pipeline never imports the planner.
    """
    if cfg.get("plan"):
        return run_plan(cfg)
    from ifpo.training.pipeline import train  # lazy: plan=true does not load the training stack

    return train(cfg)
