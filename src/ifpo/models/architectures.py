"""Decoder-only transformer shapes as plain data, with exact parameter counts.

Llama, Qwen2, Mistral and Gemma-2 share this layout (Gemma-2 adds two more RMSNorms per layer
and ties its embeddings; Qwen2 biases q/k/v); :func:`arch_from_hf_config` reads any of them
from a model's config.json, so the planner covers every checkpoint of these families.

The memory planner must work for 70B models on a laptop, so it never builds a model:
it derives every parameter count from the handful of shape numbers in :class:`ArchSpec`.
The formulas are checked against transformers' own modules (built on the meta device)
in ``tests/scale/test_planner.py``.

Counted modules (Llama / Qwen2 family: GQA attention, SwiGLU MLP, RMSNorm, no MLP bias)::

    embeddings        vocab * hidden
    per layer
      q_proj          hidden * heads*head_dim      (+ heads*head_dim bias if qkv_bias)
      k_proj, v_proj  hidden * kv_heads*head_dim   (+ kv_heads*head_dim bias each if qkv_bias)
      o_proj          heads*head_dim * hidden      (never biased)
      gate/up_proj    hidden * mlp                 (each)
      down_proj       mlp * hidden
      RMSNorms        norms * hidden               (weight only; 2, or 4 in Gemma-2)
    final RMSNorm     hidden
    lm_head           vocab * hidden               (0 when tied to the embeddings)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifpo.config.plain import to_plain

#: Linear modules inside one decoder layer, as named in transformers' Llama/Qwen2 code.
ATTENTION_LINEARS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_LINEARS: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")
ALL_LINEAR: tuple[str, ...] = ATTENTION_LINEARS + MLP_LINEARS
GIB = 2**30  # bytes per GiB, the unit of every memory figure


@dataclass(frozen=True)
class ArchSpec:
    """Shape of a Llama-style decoder; enough to count parameters and size activations."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    mlp: int
    vocab: int
    tied_embeddings: bool = False
    head_dim: int | None = None
    qkv_bias: bool = False
    norms_per_layer: int = 2
    model_type: str = "llama"  # transformers' model_type: the family a tiny stand-in is built from

    def __post_init__(self) -> None:
        if self.heads % self.kv_heads != 0:
            raise ValueError(
                f"{self.name}: heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})"
            )
        if self.head_dim is None and self.hidden % self.heads != 0:
            raise ValueError(f"{self.name}: hidden ({self.hidden}) not divisible by heads; give head_dim")

    @property
    def dim_per_head(self) -> int:
        """Explicit head_dim if given, else hidden // heads (transformers' default)."""
        return self.head_dim if self.head_dim is not None else self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.dim_per_head

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.dim_per_head

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each linear in one decoder layer."""
        h, m = self.hidden, self.mlp
        return {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "gate_proj": (h, m),
            "up_proj": (h, m),
            "down_proj": (m, h),
        }

    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def lm_head_params(self) -> int:
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    def attention_params_per_layer(self) -> int:
        shapes = self.linear_shapes()
        weights = sum(i * o for name, (i, o) in shapes.items() if name in ATTENTION_LINEARS)
        bias = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        return weights + bias

    def mlp_params_per_layer(self) -> int:
        return 3 * self.hidden * self.mlp

    def norm_params_per_layer(self) -> int:
        # input_layernorm + post_attention_layernorm (+ pre/post_feedforward_layernorm in Gemma-2)
        return self.norms_per_layer * self.hidden

    def params_per_layer(self) -> int:
        return self.attention_params_per_layer() + self.mlp_params_per_layer() + self.norm_params_per_layer()

    def total_params(self) -> int:
        """Exact count, equal to ``sum(p.numel() for p in model.parameters())`` in transformers."""
        final_norm = self.hidden
        return (
            self.embedding_params()
            + self.layers * self.params_per_layer()
            + final_norm
            + self.lm_head_params()
        )

    def largest_module_params(self) -> int:
        """Params of the biggest single module, the unit ZeRO-3 gathers at once.

        Same definition as DeepSpeed's ``model_to_params`` (params owned directly by a module):
        usually the embedding/lm_head (vocab x hidden), else the largest linear.
        """
        linears = [i * o for i, o in self.linear_shapes().values()]
        return max(self.embedding_params(), *linears)

    def lora_params(self, rank: int, targets: tuple[str, ...] = ALL_LINEAR) -> int:
        """Trainable LoRA params: each targeted linear (in -> out) adds A (r x in) and B (out x r).

        PEFT's ``target_modules="all-linear"`` targets every linear except the output layer
        (lm_head), i.e. exactly :data:`ALL_LINEAR` in each decoder layer. LoRA adds no bias.
        """
        shapes = self.linear_shapes()
        unknown = set(targets) - set(shapes)
        if unknown:
            raise ValueError(f"unknown LoRA targets {sorted(unknown)}; choose from {list(shapes)}")
        per_layer = sum(rank * (shapes[t][0] + shapes[t][1]) for t in targets)
        return self.layers * per_layer


LLAMA_3_1_8B = ArchSpec(
    name="llama-3.1-8b", hidden=4096, layers=32, heads=32, kv_heads=8, mlp=14336, vocab=128256
)
LLAMA_3_1_70B = ArchSpec(
    name="llama-3.1-70b", hidden=8192, layers=80, heads=64, kv_heads=8, mlp=28672, vocab=128256
)
QWEN2_7B = ArchSpec(
    name="qwen2-7b", hidden=3584, layers=28, heads=28, kv_heads=4, mlp=18944, vocab=152064, qkv_bias=True,
    model_type="qwen2",
)

PRESETS: dict[str, ArchSpec] = {a.name: a for a in (LLAMA_3_1_8B, LLAMA_3_1_70B, QWEN2_7B)}


#: transformers model_type -> (norms per layer, q/k/v always biased). Other families are refused:
#: their layers differ (MoE, parallel blocks, ...) and the counts here would be wrong.
FAMILIES: dict[str, tuple[int, bool]] = {"llama": (2, False), "mistral": (2, False), "qwen2": (2, True),
"gemma2": (4, False)}


def arch_from_hf_config(config: Mapping[str, Any], name: str) -> ArchSpec:
    """ArchSpec from a transformers config.json of a Llama / Qwen2 / Mistral / Gemma-2 model."""
    model_type = str(config.get("model_type", ""))
    if model_type not in FAMILIES:
        raise ValueError(
            f"{name}: model_type {model_type!r} is not one the planner models; supported: {sorted(FAMILIES)}"
        )
    if config.get("mlp_bias"):
        raise ValueError(f"{name}: mlp_bias=true is not modelled by the planner")
    norms, qkv_bias = FAMILIES[model_type]
    heads = int(config["num_attention_heads"])
    # Gemma-2 ties its embeddings unless told otherwise; the Llama family defaults to untied.
    tied_default = model_type == "gemma2"
    return ArchSpec(
        name=name,
        hidden=int(config["hidden_size"]),
        layers=int(config["num_hidden_layers"]),
        heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        mlp=int(config["intermediate_size"]),
        vocab=int(config["vocab_size"]),
        tied_embeddings=bool(config.get("tie_word_embeddings", tied_default)),
        head_dim=config.get("head_dim"),
        qkv_bias=qkv_bias or bool(config.get("attention_bias", False)),
        norms_per_layer=norms,
        model_type=model_type,
    )


def arch_from_path(path: str | Path) -> ArchSpec:
    """ArchSpec from a model folder or its config.json (nothing downloaded, no weights read)."""
    path = Path(path)
    config_file = path / "config.json" if path.is_dir() else path
    if not config_file.is_file():
        raise FileNotFoundError(f"{path}: no config.json (give a model folder or its config.json)")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file}: line {err.lineno}: not valid JSON ({err.msg})") from None
    name = config_file.parent.name or config_file.stem
    try:
        return arch_from_hf_config(config, name)
    except KeyError as err:
        raise ValueError(f"{config_file}: missing field {err.args[0]!r}") from None


def get_arch(name: str) -> ArchSpec:
    """A preset by case-insensitive name (e.g. ``llama-3.1-70b``), or a folder / config.json path."""
    key = name.lower()
    if key in PRESETS:
        return PRESETS[key]
    if Path(name).exists():
        return arch_from_path(name)
    raise KeyError(f"unknown architecture {name!r}; presets: {sorted(PRESETS)}, or a path to a config.json")


def arch_from_model_cfg(model_cfg: Any, required: bool = True) -> ArchSpec | None:
    """model.arch (preset name or shape dict), else a local config.json; None if unknown and not required."""
    arch = model_cfg.get("arch")
    if isinstance(arch, str):
        return get_arch(arch)
    if arch:
        fields = to_plain(arch)
        return ArchSpec(**{"name": "model.arch", **fields})
    for source in (model_cfg.get("config"), model_cfg.get("name_or_path")):
        if not source:
            continue
        path = Path(str(source))
        if (path / "config.json").is_file() or path.is_file():
            return arch_from_path(path)
    if required:
        raise ValueError(
            "plan=true needs the architecture without downloading: set model.arch to a preset "
            "(llama-3.1-8b, llama-3.1-70b, qwen2-7b), a local config.json path, or "
            "{hidden, layers, heads, kv_heads, mlp, vocab}, "
            "or point model.config / model.name_or_path at a local folder with config.json"
        )
    return None
