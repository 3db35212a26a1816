"""Typed schemas for the config groups a researcher edits most (model, ref, data, loss, optim).

Each YAML file in `conf/<group>/` lists its schema first in its defaults list, so Hydra
validates it at start-up: a misspelled key fails with "Key 'bta' not in 'DPOLossConfig'",
and a bad enum value lists the allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore


class Dtype(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class AttnImplementation(str, Enum):
    sdpa = "sdpa"
    eager = "eager"
    flash_attention_2 = "flash_attention_2"


class RefMode(str, Enum):
    copy = "copy"  # a frozen copy of the policy's starting weights (or of ref.name_or_path)
    none = "none"  # no reference model (SFT)
    adapter = "adapter"  # with LoRA: the policy with its adapters disabled (no second model)
    precomputed = "precomputed"  # reference log-probs from an on-disk cache (no reference forward)


class RecordKind(str, Enum):
    pair = "pair"
    quad = "quad"


# Functional form because `raise` is a Python keyword; OmegaConf matches enum *names*.
OnError = Enum("OnError", {"raise": "raise", "skip": "skip"}, type=str)


class SyntheticKind(str, Enum):
    rpo = "rpo"
    dpo = "dpo"
    iopo = "iopo"
    sft = "sft"


class DPOVariant(str, Enum):
    sigmoid = "sigmoid"
    ipo = "ipo"
    hinge = "hinge"


class SchedulerName(str, Enum):
    cosine = "cosine"
    linear = "linear"
    constant_with_warmup = "constant_with_warmup"
    cosine_with_min_lr = "cosine_with_min_lr"


@dataclass
class ModelConfig:
    name_or_path: str | None = None  # HF folder or hub id: loads weights and tokenizer
    config: str | None = None  # architecture config (folder or config.json) for random init
    tokenizer: str | None = None  # defaults to name_or_path
    chat_template: str | None = None  # a .jinja file or a bundled name (chatml); default: the tokenizer's own
    gguf_file: str | None = None  # converted once into name_or_path (a plain HF folder), then loaded from there
    gguf_package: str | None = None  # the installed distribution that ships gguf_file; null: gguf_file is a path
    dtype: Dtype = Dtype.float32
    attn_implementation: AttnImplementation = AttnImplementation.sdpa
    gradient_checkpointing: bool = False
    logprob_chunk_size: int = 1024  # response tokens per LM-head chunk
    trust_remote_code: bool = False
    arch: Any | None = None  # ArchSpec preset name or {hidden, layers, ...}: plan=true needs no download


@dataclass
class RefConfig:
    mode: RefMode = RefMode.copy
    name_or_path: str | None = None  # a different reference model; default: the policy's start
    cache_dir: str = "data/reference_cache"  # precomputed: where cached reference log-probs live
    precompute_batch_size: int = 8  # precomputed: examples per forward in the pre-pass


@dataclass
class SyntheticDataConfig:
    enabled: bool = False
    records: SyntheticKind = SyntheticKind.rpo
    num_train_tasks: int = 600
    num_val_tasks: int = 60
    samples_per_task: int = 3
    min_margin: int = 1
    seed: int = 0
    output_dir: str = "data/generated"


@dataclass
class DataConfig:
    kind: RecordKind | None = None  # default: what the loss head trains on
    train_files: list[str] = field(default_factory=list)
    val_files: list[str] = field(default_factory=list)
    hub_name: str | None = None
    hub_config: str | None = None
    train_split: str = "train"
    val_split: str | None = None
    val_fraction: float = 0.0
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    max_length: int = 1024
    max_prompt_length: int = 768
    on_error: OnError = OnError["raise"]  # type: ignore[valid-type]
    batch_size: int = 8
    eval_batch_size: int = 8
    num_workers: int = 0
    shuffle: bool = True
    packing: bool = True  # one padding-free row per micro-batch (segment attention)
    prefix_sharing: bool = True  # with packing: one prompt per [prompt, chosen, rejected] segment


@dataclass
class SFTLossConfig:
    name: str = "sft"


@dataclass
class DPOLossConfig:
    name: str = "dpo"
    beta: float = 0.1
    label_smoothing: float = 0.0
    variant: DPOVariant = DPOVariant.sigmoid
    sft_weight: float = 0.0


@dataclass
class RPOLossConfig(DPOLossConfig):
    name: str = "rpo"
    gamma: float = 0.05
    margin_in_beta: bool = False


@dataclass
class IOPOLossConfig:
    name: str = "iopo"
    beta: float = 0.1
    label_smoothing: float = 0.0
    sft_weight: float = 0.0


@dataclass
class OptimConfig:
    lr: float = 5e-6
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    scheduler: SchedulerName = SchedulerName.cosine
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.0  # only for cosine_with_min_lr


class StrategyName(str, Enum):
    single = "single"
    ddp = "ddp"
    zero3 = "zero3"
    zero3_offload = "zero3_offload"


@dataclass
class StrategyConfig:
    name: StrategyName = StrategyName.single
    cpu_test: bool = False  # run DeepSpeed on CPU processes over gloo (tests only)
    exclude_frozen_parameters: bool | None = None  # null: exclude when no LoRA (frozen = reference)
    deepspeed: dict[str, Any] | None = None  # the DeepSpeed config dict (zero3 options)
    ddp: dict[str, Any] | None = None  # keyword arguments of lightning's DDPStrategy


@dataclass
class PeftConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: Any = "all-linear"  # "all-linear" or a list of module names
    bias: str = "none"
    init_lora_weights: bool = True  # true: B = 0, so the adapted model starts equal to the base


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="ref", name="ref_schema", node=RefConfig)
    cs.store(group="data", name="data_schema", node=DataConfig)
    cs.store(group="optim", name="optim_schema", node=OptimConfig)
    cs.store(group="loss", name="sft_schema", node=SFTLossConfig)
    cs.store(group="loss", name="dpo_schema", node=DPOLossConfig)
    cs.store(group="loss", name="rpo_schema", node=RPOLossConfig)
    cs.store(group="loss", name="iopo_schema", node=IOPOLossConfig)
    cs.store(group="strategy", name="strategy_schema", node=StrategyConfig)
    cs.store(group="peft", name="peft_schema", node=PeftConfig)
