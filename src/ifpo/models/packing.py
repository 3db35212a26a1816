"""Segment attention for padding-free packed batches with shared prompts.

A packed batch is ONE row holding every sequence of a micro-batch back to back. A row is cut
into *segments*; each token of a segment has a *branch*: 0 for a shared prefix (the prompt),
k >= 1 for the k-th response that continues it. A token attends causally to earlier tokens of
its own segment that are on branch 0 or on its own branch, so [prompt, chosen, rejected] lets
both responses read the prompt but not each other, and the prompt is computed once.

Why hand-written: transformers' packed-sequence support (position_ids / cu_seqlens with
flash_attention_2, or SDPA with a block-diagonal mask) only knows block-diagonal causal masks,
not prompt-sharing branches, and a dense [T, T] mask over the whole row wastes attention
compute quadratic in the *row* length. Each layer's queries, keys and values go through one of
the kernels of ifpo.models.segment_kernels (segment-batched SDPA, flex_attention with a block
mask, flash-attn varlen), chosen by `model.segment_attention`. The model's own forward is
unchanged (projections, RoPE from our position_ids, MLP), so the same module works under
DeepSpeed ZeRO-3, PEFT and activation checkpointing. The model's per-layer `sliding_window`
(Mistral, Gemma-2) and `softcap` (Gemma-2's attention soft-capping) arrive as keyword
arguments and are honoured by every kernel; the window counts positions, so both responses of
a shared prompt see the same prompt tokens as their own unpacked sequence would.

The function is installed once per model as a *wrapping* attention implementation: calls that
carry an `ifpo_layout` keyword use segment attention, every other call (generation, unpacked
batches) goes to the model's original implementation unchanged. Keeping the switch in the
keyword arguments rather than in a temporary config swap keeps activation-checkpoint
recomputation (which replays the forward during backward) on the same path.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import eager_attention_forward

from ifpo.models.batch import PackedBatch
from ifpo.models.logprobs import IDENTITY, LogitTransform, chunked_token_logprobs
from ifpo.models.segment_kernels import CHOICES, segment_attention

PREFIX = "ifpo_segments_"
#: True while a packed forward runs: the model's own mask builder then returns no mask (the
#: segment kernels build their own), so no dense [T, T] mask over the whole row is made.
_PACKED = contextvars.ContextVar("ifpo_packed", default=False)
#: config field -> why segment attention cannot reproduce it (refused at the first packed call).
UNSUPPORTED_FIELDS = {
    "attention_chunk_size": "chunked local attention (Llama-4)",
    "use_bidirectional_attention": "bidirectional attention",
}


@dataclass
class SegmentLayout:
    """Index tensors mapping the packed row to a [segments, length] batch and back.

    seg_index[s, l]: row position of token l of segment s (0 for padding slots);
    seg_branch[s, l]: 0 prefix, k >= 1 the k-th response, -1 padding slot;
    seg_position[s, l]: its position id (what sliding windows count);
    token_segment[t], token_offset[t]: where row position t lives in the segment batch.
    Masks are built lazily per kernel and window and cached for all layers of one forward.
    """

    seg_index: torch.Tensor
    seg_branch: torch.Tensor
    seg_position: torch.Tensor
    token_segment: torch.Tensor
    token_offset: torch.Tensor
    requested: str = "auto"  # model.segment_attention
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_batch(cls, batch: PackedBatch, requested: str = "auto") -> SegmentLayout:
        index, branch = batch.seg_index, batch.seg_branch
        position = batch.position_ids[0][index].masked_fill(branch < 0, 0)
        return cls(index, branch, position, batch.token_segment, batch.token_offset, requested)

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    @property
    def shares_prefix(self) -> bool:
        """Any segment with two responses after its prompt (needs cross-branch masking)."""
        return self.cached("shares", lambda: bool((self.seg_branch > 1).any()))

    @property
    def longest_position(self) -> int:
        return self.cached("longest", lambda: int(self.seg_position.max()))

    @property
    def row_branch(self) -> torch.Tensor:
        return self.cached("row_branch", lambda: self.seg_branch[self.token_segment, self.token_offset])

    @property
    def row_position(self) -> torch.Tensor:
        return self.cached("row_position", lambda: self.seg_position[self.token_segment, self.token_offset])

    def dense_mask(self, window: int | None) -> torch.Tensor:
        """[S, 1, L, L] allowed attention (branch rule, causal, sliding window by position)."""

        def build() -> torch.Tensor:
            mask = branch_mask(self.seg_branch)
            if window is not None:
                distance = self.seg_position[:, :, None] - self.seg_position[:, None, :]
                mask = mask & (distance < window)[:, None]
            return mask

        return self.cached(("dense", window), build)

    def cu_seqlens(self) -> tuple[torch.Tensor, int]:
        """Cumulative segment lengths (int32) and the longest, for varlen kernels."""

        def build() -> tuple[torch.Tensor, int]:
            lengths = (self.seg_branch >= 0).sum(-1)
            cu = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
            return cu, int(lengths.max())

        return self.cached("cu_seqlens", build)


def branch_mask(branches: torch.Tensor) -> torch.Tensor:
    """[S, L] branch ids (0 prefix, k>=1 response k, -1 padding) -> [S, 1, L, L] allowed attention.

    Padding slots see themselves (diagonal), so no softmax row is empty and no NaN can reach
    the gradients; their outputs are never scattered back.
    """
    length = branches.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=branches.device).tril()
    query, key = branches[:, :, None], branches[:, None, :]
    return (causal & ((key == 0) | (key == query)))[:, None]


def _wrapping_attention(original: str):
    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):  # type: ignore[no-untyped-def]
        layout = kwargs.pop("ifpo_layout", None)
        if layout is not None:
            if kwargs.get("s_aux") is not None:
                raise ValueError(
                    f"{type(module).__name__} uses attention sinks (s_aux), which packed segment "
                    "attention does not implement: set data.packing=false for this model"
                )
            out = segment_attention(
                query,
                key,
                value,
                layout,
                dropout,
                scaling,
                kwargs.get("sliding_window"),
                kwargs.get("softcap"),
            )
            return out, None
        fallback = ALL_ATTENTION_FUNCTIONS.get_interface(original, eager_attention_forward)
        return fallback(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)

    return attention


def _wrapping_mask(original: str):
    def mask(*args, **kwargs):  # type: ignore[no-untyped-def]
        if _PACKED.get():
            return None
        return ALL_MASK_ATTENTION_FUNCTIONS[original](*args, **kwargs)

    return mask


def check_packable(config: Any) -> None:
    """Refuse model configs whose attention segment attention cannot reproduce, naming the field."""
    for name, what in UNSUPPORTED_FIELDS.items():
        if getattr(config, name, None):
            raise ValueError(
                f"model config field `{name}`={getattr(config, name)!r} ({what}) is not supported by "
                "packed segment attention: set data.packing=false for this model"
            )


def install_segment_attention(model: torch.nn.Module) -> None:
    """Let `model` take packed batches (idempotent); unpacked calls behave exactly as before."""
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(
            f"{type(model).__name__} has no transformers config; cannot install segment attention"
        )
    original = config._attn_implementation or "eager"
    if original.startswith(PREFIX):
        return
    check_packable(config)
    name = PREFIX + original
    if name not in ALL_ATTENTION_FUNCTIONS:
        ALL_ATTENTION_FUNCTIONS.register(name, _wrapping_attention(original))
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, _wrapping_mask(original))
    config._attn_implementation = name


def packed_hidden_states(
    decoder: torch.nn.Module, batch: PackedBatch, segment_attention: str = "auto"
) -> torch.Tensor:
    """The decoder's last hidden state [1, T, H] for a packed batch (see ifpo.data.packed_collate)."""
    if segment_attention not in CHOICES:
        raise ValueError(f"model.segment_attention must be one of {CHOICES}, got {segment_attention!r}")
    install_segment_attention(decoder)
    token = _PACKED.set(True)
    try:
        return decoder(
            input_ids=batch.input_ids,
            # All ones: no padding exists, and an explicit 2D mask keeps transformers from building a
            # packed-sequence mask out of the restarting position ids (the mask builder returns None).
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
            ifpo_layout=SegmentLayout.from_batch(batch, segment_attention),
        )[0]
    finally:
        _PACKED.reset(token)


def packed_sequence_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    batch: PackedBatch,
    bias: torch.Tensor | None = None,
    chunk_size: int = 1024,
    transform: LogitTransform = IDENTITY,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs and token counts per sequence of a packed batch.

    Only the hidden states named by `logp_index` go through the chunked LM head
    (ifpo.models.logprobs), so prompt positions never produce logits.
    """
    token_logps = chunked_token_logprobs(
        hidden[0, batch.logp_index], weight, batch.logp_target, bias, chunk_size, transform
    )
    counts = batch.token_counts
    sums = torch.zeros(counts.shape[0], dtype=token_logps.dtype, device=hidden.device)
    return sums.index_add(0, batch.logp_sequence, token_logps), counts
