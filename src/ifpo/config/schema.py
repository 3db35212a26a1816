"""Typed schemas for the config groups a researcher edits most (model, ref, data, loss, optim).

Each YAML file in `conf/<group>/` lists its schema first in its defaults list, so Hydra
validates it at start-up: a misspelled key fails with "Key 'bta' not in 'DPOLossConfig'",
and a bad enum value lists the allowed values.

Loss defaults live here and only here. The dataclasses are the one home because they are the
one place every path reaches: Hydra merges them under `conf/loss/*.yaml` (which only select
the schema and document the keys), and `ifpo.losses.get_loss_head` fills options a caller
leaves out from them (the heads' constructors take required keyword arguments). A YAML or
keyword default would be a second copy that drifts; tests/config/test_one_home.py fails if
one comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore

from ifpo.config.plain import plain_fields


class Dtype(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class AttnImplementation(str, Enum):
    auto = "auto"  # flash_attention_2 where flash-attn, CUDA and 16-bit weights allow, else sdpa
    sdpa = "sdpa"
    eager = "eager"
    flash_attention_2 = "flash_attention_2"


class SegmentAttention(str, Enum):
    """Kernel of packed segment attention (ifpo.models.segment_kernels)."""

    auto = "auto"  # flash-attn varlen where it fits, else measured on CUDA, sdpa on the CPU
    flex = "flex"
    sdpa = "sdpa"


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
    gguf_file: str | None = None
    gguf_package: str | None = None
    dtype: Dtype = Dtype.float32
    attn_implementation: AttnImplementation = AttnImplementation.sdpa
    gradient_checkpointing: bool = False
    logprob_chunk_size: int = 1024  # response tokens per LM-head chunk
    segment_attention: SegmentAttention = SegmentAttention.auto  # packed batches: auto | flex | sdpa
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
    # examples per optimizer step; null: trainer.accumulate_grad_batches as given. Set, it derives
    # the accumulation from nodes x devices x batch_size (ifpo.training.batching).
    global_batch_size: int | None = None
    eval_batch_size: int = 8
    num_workers: int = 0
    shuffle: bool = True
    packing: bool = True  # one padding-free row per micro-batch (segment attention)
    prefix_sharing: bool = True  # with packing: one prompt per [prompt, chosen, rejected] segment


@dataclass
class SFTLossConfig:
    name: str = "sft"


def _check(ok: bool, field_name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"loss.{field_name} must be {rule}, got {value!r}")


@dataclass
class DPOLossConfig:
    name: str = "dpo"
    beta: float = 0.1  # > 0: beta = 0 learns nothing, and IPO divides by it
    label_smoothing: float = 0.0  # [0, 0.5): at 0.5 chosen and rejected are interchangeable
    variant: DPOVariant = DPOVariant.sigmoid
    sft_weight: float = 0.0

    def __post_init__(self) -> None:
        # Runs when `validate_loss_config` builds the object (Hydra itself never calls it).
        _check(self.beta > 0, "beta", "> 0", self.beta)
        _check(0 <= self.label_smoothing < 0.5, "label_smoothing", "in [0, 0.5)", self.label_smoothing)
        _check(self.sft_weight >= 0, "sft_weight", ">= 0", self.sft_weight)


@dataclass
class RPOLossConfig(DPOLossConfig):
    name: str = "rpo"
    gamma: float = 0.05  # >= 0: the margin scale; 0 is plain DPO
    margin_in_beta: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.gamma >= 0, "gamma", ">= 0", self.gamma)


@dataclass
class IOPOLossConfig:
    name: str = "iopo"
    beta: float = 0.1
    label_smoothing: float = 0.0
    sft_weight: float = 0.0

    __post_init__ = DPOLossConfig.__post_init__


LOSS_SCHEMAS: dict[str, type] = {
    "sft": SFTLossConfig,
    "dpo": DPOLossConfig,
    "rpo": RPOLossConfig,
    "iopo": IOPOLossConfig,
}


def _refuse_unknown(name: str, schema: type, keys: Any) -> None:
    allowed = [f.name for f in fields(schema)]
    unknown = [key for key in keys if key not in allowed]
    if unknown:
        raise ValueError(
            f"loss={name} has no option {', '.join(f'loss.{k}' for k in unknown)}; "
            f"its options are: {', '.join(allowed)}"
        )


def loss_options(schema: type, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """A head's keyword arguments: `options` over the schema's defaults, range-checked by the
    schema's `__post_init__`, enums as their strings; `name` itself left out."""
    _refuse_unknown(name, schema, options)
    checked = schema(**{**options, "name": name})
    return {key: value for key, value in plain_fields(checked).items() if key != "name"}


def validate_loss_config(loss: Any) -> Any:
    """The loss node checked against its head's schema: unknown keys and out-of-range values refused.

    Hydra's `+loss.key=value` adds keys even to a typed node (so `+loss.bta=0.2`, or RPO's
    `+loss.gamma` under `loss=dpo`, would be silently ignored), and it never runs a dataclass's
    `__post_init__`; this does both, naming the offending field. Returns the schema object.
    """
    from omegaconf import OmegaConf

    name = loss.get("name")
    schema = LOSS_SCHEMAS.get(name)
    if schema is None:
        raise ValueError(f"unknown loss.name={name!r}; allowed: {', '.join(LOSS_SCHEMAS)}")
    _refuse_unknown(name, schema, loss)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), loss))


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
