"""The Lightning strategy a `strategy` config names, and the checks that go with it.

single -> Lightning's default; ddp -> DDPStrategy; zero3 / zero3_offload -> DeepSpeedStrategy
with the config dict from :mod:`ifpo.training.deepspeed_config`. Also: the fail-fast check that a
GPU experiment has GPUs, and the optimizer class ZeRO-Offload needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, Strategy
from omegaconf import DictConfig

from ifpo.config.plain import to_plain
from ifpo.training.deepspeed_config import deepspeed_config, offload_device, zero_stage

DEEPSPEED_STRATEGIES = ("zero3", "zero3_offload")


class GPUUnavailable(SystemExit):
    """A GPU experiment started on a machine without CUDA: exit with a message, no traceback."""


def _name(strategy_cfg: Any) -> str:
    return str(strategy_cfg.get("name", "single")) if strategy_cfg else "single"


def needs_cuda(cfg: DictConfig) -> bool:
    """True when the config asks for CUDA: GPU trainer, or DeepSpeed outside the CPU test strategy."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    strategy = cfg.get("strategy") or {}
    deepspeed = _name(strategy) in DEEPSPEED_STRATEGIES and not strategy.get("cpu_test", False)
    return accelerator in ("gpu", "cuda") or deepspeed


def _command_line() -> str:
    """`python train.py <this run's overrides>` when run under Hydra, else a generic form."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("plan=")]
        return " ".join(["python train.py", *overrides])
    except ValueError:  # HydraConfig is not set outside a Hydra run (tests compose configs directly)
        return "python train.py +experiment=NAME"


def require_cuda(cfg: DictConfig) -> None:
    """Stop before loading anything when a GPU experiment runs where there is no CUDA."""
    if not needs_cuda(cfg) or torch.cuda.is_available():
        return
    argv_hint = _command_line()
    trainer = cfg.trainer
    wants = (
        f"trainer.accelerator={trainer.get('accelerator')}, strategy={_name(cfg.get('strategy'))}, "
        f"{trainer.get('num_nodes', 1)} node(s) x {trainer.get('devices', 1)} GPU(s)"
    )
    raise GPUUnavailable(
        f"error: this run needs CUDA GPUs ({wants}) but torch.cuda.is_available() is False on this "
        f"machine (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}).\n"
        f"Nothing was loaded. To size it without GPUs, print its memory plan instead:\n"
        f"    {argv_hint} plan=true\n"
        f"or train a small model on this CPU: python train.py"
    )


def resolved_deepspeed_config(cfg: DictConfig) -> dict[str, Any]:
    """The DeepSpeed dict for this run, with "auto" sizes taken from the model's hidden size."""
    from ifpo.models.architectures import arch_from_model_cfg

    arch = arch_from_model_cfg(cfg.model, required=False)
    return deepspeed_config(cfg.strategy.deepspeed, arch.hidden if arch else None)


def _single(cfg: DictConfig, name: str) -> str:
    return "auto"


def _ddp(cfg: DictConfig, name: str) -> Strategy:
    return DDPStrategy(**to_plain(cfg.strategy.get("ddp")))


def _deepspeed(cfg: DictConfig, name: str) -> Strategy:
    strategy_cfg = cfg.strategy
    config = resolved_deepspeed_config(cfg)
    if zero_stage(config) != 3:
        raise ValueError(
            f"strategy={name} expects strategy.deepspeed.zero_optimization.stage=3, got {zero_stage(config)}"
        )
    exclude = strategy_cfg.get("exclude_frozen_parameters")
    if exclude is None:
        # Frozen weights are rebuilt from the config on resume, never checkpointed: the reference,
        # and with LoRA a pretrained base (only adapters + their optimizer state are written).
        # A random-init LoRA base has nowhere to come back from, so it stays in the checkpoint.
        lora = bool((cfg.get("peft") or {}).get("enabled", False))
        exclude = not lora or bool(cfg.model.get("name_or_path"))
    cls: type[DeepSpeedStrategy] = DeepSpeedStrategy
    if strategy_cfg.get("cpu_test"):
        from ifpo.training.cpu_deepspeed import CPUDeepSpeedStrategy

        cls = CPUDeepSpeedStrategy
    return cls(config=config, exclude_frozen_parameters=bool(exclude))


#: strategy.name -> what builds it: the project's registry way of building a part picked by name
#: (README, "Architecture"); the keys are StrategyName's values.
STRATEGIES: dict[str, Callable[[DictConfig, str], Strategy | str]] = {
    "single": _single,
    "ddp": _ddp,
    **{name: _deepspeed for name in DEEPSPEED_STRATEGIES},
}


def build_strategy(cfg: DictConfig) -> Strategy | str:
    """What to pass as `lightning.Trainer(strategy=...)` for `cfg.strategy`."""
    name = _name(cfg.get("strategy"))
    if name not in STRATEGIES:
        raise ValueError(f"strategy.name={name!r}; allowed: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](cfg, name)


def is_zero3(strategy: Any) -> bool:
    return (
        isinstance(strategy, DeepSpeedStrategy)
        and isinstance(strategy.config, dict)
        and strategy.zero_stage_3
    )


def optimizer_class(strategy: Any) -> type[torch.optim.Optimizer]:
    """DeepSpeedCPUAdam when ZeRO-Offload keeps the optimizer on CPU (torch AdamW would be
    ~10x slower there and DeepSpeed refuses it by default), torch AdamW otherwise."""
    if (
        isinstance(strategy, DeepSpeedStrategy)
        and offload_device(strategy.config, "offload_optimizer") != "none"
    ):
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam
    return torch.optim.AdamW


@contextlib.contextmanager
def hf_zero3_context(strategy: Any) -> Iterator[Any]:
    """Make transformers see ZeRO-3 while models are built, so from_pretrained loads shard-wise
    (rank 0 reads each tensor, scatters it, no rank ever holds the whole model on its device) and
    from_config initialises each gathered module once, on rank 0.

    transformers keys this off a global weak reference to an HfDeepSpeedConfig; it is kept alive
    only inside this context, so later non-DeepSpeed models in the same process are unaffected.
    """
    if not is_zero3(strategy):
        yield None
        return
    from transformers.integrations.deepspeed import HfDeepSpeedConfig, unset_hf_deepspeed_config

    hf_config = HfDeepSpeedConfig(strategy.config)
    try:
        yield hf_config
    finally:
        unset_hf_deepspeed_config()
        del hf_config
