"""Decoder-only transformer shapes as plain data, with exact parameter counts.

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
      2 RMSNorms      2 * hidden                   (weight only)
    final RMSNorm     hidden
    lm_head           vocab * hidden               (0 when tied to the embeddings)
"""

from __future__ import annotations

from dataclasses import dataclass

#: Linear modules inside one decoder layer, as named in transformers' Llama/Qwen2 code.
ATTENTION_LINEARS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_LINEARS: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")
ALL_LINEAR: tuple[str, ...] = ATTENTION_LINEARS + MLP_LINEARS


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
        return 2 * self.hidden  # input_layernorm + post_attention_layernorm

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
    name="qwen2-7b", hidden=3584, layers=28, heads=28, kv_heads=4, mlp=18944, vocab=152064, qkv_bias=True
)

PRESETS: dict[str, ArchSpec] = {a.name: a for a in (LLAMA_3_1_8B, LLAMA_3_1_70B, QWEN2_7B)}


def get_arch(name: str) -> ArchSpec:
    """Look up a preset by case-insensitive name (e.g. ``llama-3.1-70b``)."""
    key = name.lower()
    if key not in PRESETS:
        raise KeyError(f"unknown architecture {name!r}; presets: {sorted(PRESETS)}")
    return PRESETS[key]
