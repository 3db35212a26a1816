"""Segment attention for padding-free packed batches with shared prompts.

A packed batch is ONE row holding every sequence of a micro-batch back to back. A row is cut
into *segments*; each token of a segment has a *branch*: 0 for a shared prefix (the prompt),
k >= 1 for the k-th response that continues it. A token attends causally to earlier tokens of
its own segment that are on branch 0 or on its own branch, so [prompt, chosen, rejected] lets
both responses read the prompt but not each other, and the prompt is computed once.

Why hand-written: transformers' packed-sequence support (position_ids / cu_seqlens with
flash_attention_2, or SDPA with a block-diagonal mask) only knows block-diagonal causal masks,
not prompt-sharing branches, and a dense [T, T] mask over the whole row wastes attention
compute quadratic in the *row* length. Here each layer's queries, keys and values are gathered
into a [segments, heads, longest segment, dim] batch and run through one SDPA call with a
small per-segment boolean mask, then scattered back to the row. The model's own forward is
unchanged (projections, RoPE from our position_ids, MLP), so the same module works under
DeepSpeed ZeRO-3, PEFT and activation checkpointing.

The function is installed once per model as a *wrapping* attention implementation: calls that
carry an `ifpo_layout` keyword use segment attention, every other call (generation, unpacked
batches) goes to the model's original implementation unchanged. Keeping the switch in the
keyword arguments rather than in a temporary config swap keeps activation-checkpoint
recomputation (which replays the forward during backward) on the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import eager_attention_forward

from ifpo.models.logprobs import chunked_token_logprobs

PREFIX = "ifpo_segments_"


@dataclass
class SegmentLayout:
    """Index tensors mapping the packed row to a [segments, length] batch and back.

    seg_index[s, l]: row position of token l of segment s (0 for padding slots);
    seg_mask[s, 0, i, j]: whether token i of segment s may attend to token j;
    token_segment[t], token_offset[t]: where row position t lives in the segment batch.
    """

    seg_index: torch.Tensor
    seg_mask: torch.Tensor
    token_segment: torch.Tensor
    token_offset: torch.Tensor

    @classmethod
    def from_batch(cls, batch: dict[str, Any]) -> SegmentLayout:
        return cls(batch["seg_index"], batch["seg_mask"], batch["token_segment"], batch["token_offset"])


def branch_mask(branches: torch.Tensor) -> torch.Tensor:
    """[S, L] branch ids (0 prefix, k>=1 response k, -1 padding) -> [S, 1, L, L] allowed attention.

    Padding slots see themselves (diagonal), so no softmax row is empty and no NaN can reach
    the gradients; their outputs are never scattered back.
    """
    length = branches.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=branches.device).tril()
    query, key = branches[:, :, None], branches[:, None, :]
    return (causal & ((key == 0) | (key == query)))[:, None]


def segment_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    layout: SegmentLayout,
    dropout: float = 0.0,
    scaling: float | None = None,
) -> torch.Tensor:
    """Attention of a packed row [1, H, T, D] under `layout`; returns [1, T, H, D] like HF's kernels."""
    if query.shape[0] != 1:
        raise ValueError(f"segment attention expects one packed row, got a batch of {query.shape[0]} rows")
    groups = query.shape[1] // key.shape[1]
    index = layout.seg_index

    def to_segments(x: torch.Tensor) -> torch.Tensor:  # [1, H, T, D] -> [S, H, L, D]
        return x[0].transpose(0, 1)[index].transpose(1, 2)

    q, k, v = to_segments(query), to_segments(key), to_segments(value)
    if groups > 1:  # grouped-query attention: share each KV head across its query heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=layout.seg_mask, dropout_p=dropout, scale=scaling
    )  # [S, H, L, D]
    out = out.transpose(1, 2)[layout.token_segment, layout.token_offset]  # [T, H, D]
    return out.unsqueeze(0)


def _wrapping_attention(original: str):
    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):  # type: ignore[no-untyped-def]
        layout = kwargs.pop("ifpo_layout", None)
        if layout is not None:
            return segment_attention(module, query, key, value, layout, dropout, scaling), None
        fallback = ALL_ATTENTION_FUNCTIONS.get_interface(original, eager_attention_forward)
        return fallback(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)

    return attention


def install_segment_attention(model: torch.nn.Module) -> None:
    """Let `model` take packed batches (idempotent); unpacked calls behave exactly as before."""
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(f"{type(model).__name__} has no transformers config; cannot install segment attention")
    original = config._attn_implementation or "eager"
    if original.startswith(PREFIX):
        return
    name = PREFIX + original
    if name not in ALL_ATTENTION_FUNCTIONS:
        ALL_ATTENTION_FUNCTIONS.register(name, _wrapping_attention(original))
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[original])
    config._attn_implementation = name


def packed_hidden_states(decoder: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The decoder's last hidden state [1, T, H] for a packed batch (see ifpo.data.packed_collate)."""
    install_segment_attention(decoder)
    return decoder(
        input_ids=batch["input_ids"],
        # All ones: no padding exists, and an explicit 2D mask keeps transformers from building a
        # dense [T, T] packed-sequence mask out of the restarting position ids.
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,
        ifpo_layout=SegmentLayout.from_batch(batch),
    )[0]


def packed_sequence_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, batch: dict[str, Any], bias: torch.Tensor | None = None, chunk_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs and token counts per sequence of a packed batch.

    Only the hidden states named by `logp_index` go through the chunked LM head
    (ifpo.models.logprobs), so prompt positions never produce logits.
    """
    token_logps = chunked_token_logprobs(hidden[0, batch["logp_index"]], weight, batch["logp_target"], bias, chunk_size)
    counts = batch["token_counts"]
    sums = torch.zeros(counts.shape[0], dtype=token_logps.dtype, device=hidden.device)
    return sums.index_add(0, batch["logp_sequence"], token_logps), counts
