"""The three kernels behind segment attention, and the choice between them.

* `sdpa`: queries/keys/values gathered into a [segments, heads, longest segment, dim] batch and
  one `scaled_dot_product_attention` call with a dense [segments, 1, L, L] boolean mask (an
  explicit softmax when the model soft-caps its attention scores, which SDPA cannot do).
* `flex`: `torch.nn.attention.flex_attention` over the packed row itself with a block-sparse
  mask built from the layout, so no dense mask exists and blocks that cross segments are skipped.
  Compiled once per shape bucket (row lengths are padded to `bucket_length`). torch's CPU build
  runs flex forward only (no backward), so on the CPU it serves no-grad calls (the reference).
* `flash_varlen`: flash-attn's `flash_attn_varlen_func` when every segment is one plain causal
  sequence (packing without prefix sharing), the library is importable, and the tensors are
  half precision on CUDA.

`model.segment_attention=auto` picks flash_varlen where it applies, else on CUDA the faster of
sdpa and flex measured once on the first packed layer call (logged), and sdpa on the CPU (see
README "Speed": flex loses there, and cannot train).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ifpo.models.packing import SegmentLayout

log = logging.getLogger(__name__)

CHOICES = ("auto", "flex", "sdpa")
FLEX_BLOCK = 128
#: device type -> kernel measured faster by `auto` (filled once per process and device type).
MEASURED: dict[str, str] = {}
_WARNED: set[str] = set()


def flash_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def flex_backward_supported(device_type: str) -> bool:
    """torch's CPU flex_attention raises on backward ("does not support backward on CPU")."""
    return device_type != "cpu"


def choose_kernel(
    requested: str,
    device_type: str,
    dtype: torch.dtype,
    needs_grad: bool,
    shares_prefix: bool,
    has_flash: bool,
) -> str:
    """The kernel for one call: 'sdpa', 'flex', 'flash_varlen' or 'measure' (auto, not yet measured)."""
    if requested not in CHOICES:
        raise ValueError(f"model.segment_attention must be one of {CHOICES}, got {requested!r}")
    if requested == "sdpa":
        return "sdpa"
    flex_ok = not needs_grad or flex_backward_supported(device_type)
    if requested == "flex":
        return "flex" if flex_ok else "sdpa"
    if not shares_prefix and has_flash and device_type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        return "flash_varlen"
    if device_type == "cpu":
        return "sdpa"
    if not flex_ok:
        return "sdpa"
    return MEASURED.get(device_type, "measure")


def _note_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.info(message)


# -- sdpa -----------------------------------------------------------------------------------


def _to_segments(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # [1, H, T, D] -> [S, H, L, D]
    return x[0].transpose(0, 1)[index].transpose(1, 2)


def sdpa_segments(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    layout: SegmentLayout,
    dropout: float,
    scaling: float | None,
    window: int | None,
    softcap: float | None,
) -> torch.Tensor:
    """[1, H, T, D] inputs -> [1, T, H, D]; one batched call over the segments."""
    groups = query.shape[1] // key.shape[1]
    q, k, v = (_to_segments(x, layout.seg_index) for x in (query, key, value))
    if groups > 1:  # grouped-query attention: share each KV head across its query heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    mask = layout.dense_mask(window)
    if softcap is None:
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, scale=scaling
        )
    else:  # SDPA has no score hook: the explicit softmax of transformers' eager kernel, per segment
        scale = scaling if scaling is not None else q.shape[-1] ** -0.5
        scores = torch.tanh(q @ k.transpose(-1, -2) * scale / softcap) * softcap
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.nn.functional.dropout(probs, p=dropout, training=dropout > 0) @ v
    out = out.transpose(1, 2)[layout.token_segment, layout.token_offset]  # [T, H, D]
    return out.unsqueeze(0)


# -- flex -----------------------------------------------------------------------------------


def bucket_length(tokens: int, block: int = FLEX_BLOCK) -> int:
    """Row length padded to at most 4 buckets per doubling (<= 25% padding): bounded recompiles."""
    blocks = -(-tokens // block)
    step = 1 << max(0, blocks.bit_length() - 3)
    return -(-blocks // step) * step * block


_COMPILED: dict[str, Callable[..., torch.Tensor]] = {}
_SCORE_MODS: dict[float, Callable[..., torch.Tensor]] = {}


def compiled_flex() -> Callable[..., torch.Tensor]:
    """flex_attention through torch.compile (uncompiled flex is a dense reference implementation)."""
    if "flex" not in _COMPILED:
        import torch._dynamo
        from torch.nn.attention.flex_attention import flex_attention

        # One graph per (bucket, heads, dtype, mask variant): allow more than dynamo's default 8.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        torch._dynamo.config.accumulated_recompile_limit = max(
            torch._dynamo.config.accumulated_recompile_limit, 512
        )
        _COMPILED["flex"] = torch.compile(flex_attention, dynamic=False)
    return _COMPILED["flex"]


def softcap_score_mod(softcap: float) -> Callable[..., torch.Tensor]:
    """score -> c * tanh(score / c), one function object per value (stable for compile guards)."""
    if softcap not in _SCORE_MODS:

        def score_mod(score, b, h, q_idx, kv_idx):  # type: ignore[no-untyped-def]
            return torch.tanh(score / softcap) * softcap

        _SCORE_MODS[softcap] = score_mod
    return _SCORE_MODS[softcap]


def row_block_mask(layout: SegmentLayout, window: int | None, length: int) -> Any:
    """BlockMask over the padded row: same segment, causal, prefix-or-own-branch, inside the window.

    Built directly from the layout's block-level segment ranges (O(blocks^2) small integer ops)
    rather than by `create_block_mask`, which evaluates the mask at every [T, T] position.
    Every block pair that can hold an allowed entry is a partial block; the mask_mod decides
    inside it. Pad tokens past the row form one extra segment and see earlier pads (never NaN).
    """
    from torch.nn.attention.flex_attention import BlockMask

    device = layout.token_segment.device
    tokens = layout.token_segment.shape[0]
    pad = length - tokens
    segments = layout.seg_index.shape[0]
    seg = torch.cat([layout.token_segment, torch.full((pad,), segments, dtype=torch.long, device=device)])
    branch = torch.cat([layout.row_branch, torch.zeros(pad, dtype=torch.long, device=device)])
    pos = torch.cat([layout.row_position, torch.zeros(pad, dtype=torch.long, device=device)])

    blocks = length // FLEX_BLOCK
    seg_blocks = seg.view(blocks, FLEX_BLOCK)
    first, last = seg_blocks[:, 0], seg_blocks[:, -1]  # segment ids rise along the row
    q_first, q_last = first[:, None], last[:, None]
    k_first, k_last = first[None, :], last[None, :]
    causal = torch.arange(blocks, device=device)[None, :] <= torch.arange(blocks, device=device)[:, None]
    live = causal & (k_first <= q_last) & (q_first <= k_last)  # [Qb, Kb]: some segment in both blocks
    counts = live.sum(-1).to(torch.int32)
    # Live kv blocks first, in ascending order (stable sort keeps the order among the live ones).
    order = torch.sort((~live).to(torch.int8), dim=-1, stable=True).indices.to(torch.int32)

    def mask_mod(b, h, q_idx, kv_idx):  # type: ignore[no-untyped-def]
        allowed = (seg[q_idx] == seg[kv_idx]) & (kv_idx <= q_idx)
        allowed = allowed & ((branch[kv_idx] == 0) | (branch[kv_idx] == branch[q_idx]))
        if window is not None:
            allowed = allowed & (pos[q_idx] - pos[kv_idx] < window)
        return allowed

    return BlockMask.from_kv_blocks(
        counts[None, None],
        order[None, None],
        BLOCK_SIZE=FLEX_BLOCK,
        mask_mod=mask_mod,
        seq_lengths=(length, length),
    )


def flex_row(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    layout: SegmentLayout,
    scaling: float | None,
    window: int | None,
    softcap: float | None,
) -> torch.Tensor:
    """[1, H, T, D] inputs -> [1, T, H, D] through compiled flex_attention on the bucketed row."""
    tokens = query.shape[2]
    length = bucket_length(tokens)
    block_mask = layout.cached(("flex", window, length), lambda: row_block_mask(layout, window, length))

    def padded(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, 0, 0, length - tokens))

    out = compiled_flex()(
        padded(query),
        padded(key),
        padded(value),
        block_mask=block_mask,
        scale=scaling,
        score_mod=softcap_score_mod(float(softcap)) if softcap is not None else None,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return out[:, :, :tokens].transpose(1, 2)


# -- flash-attn varlen ----------------------------------------------------------------------


def flash_varlen(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    layout: SegmentLayout,
    dropout: float,
    scaling: float | None,
    window: int | None,
    softcap: float | None,
) -> torch.Tensor:
    """Each segment one causal sequence: flash-attn's varlen kernel on [T, H, D] with cu_seqlens."""
    from flash_attn import flash_attn_varlen_func

    cu_seqlens, longest = layout.cu_seqlens()
    out = flash_attn_varlen_func(
        query[0].transpose(0, 1),
        key[0].transpose(0, 1),
        value[0].transpose(0, 1),
        cu_seqlens,
        cu_seqlens,
        longest,
        longest,
        dropout_p=dropout,
        softmax_scale=scaling,
        causal=True,
        window_size=(window - 1, 0) if window is not None else (-1, -1),
        softcap=softcap or 0.0,
    )
    return out.unsqueeze(0)


# -- dispatch -------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, run: dict[str, Callable[..., Any]]
) -> str:
    """Time forward+backward of each kernel on this call's own inputs; the faster one wins."""
    seconds = {}
    for name, kernel in run.items():
        q, k, v = (x.detach().requires_grad_(True) for x in (query, key, value))
        start = 0.0
        for repeat in range(4):  # the first call compiles (flex) or warms up
            if repeat == 1:
                _sync(query.device)
                start = time.perf_counter()
            with torch.enable_grad():
                torch.autograd.grad(kernel(q, k, v).float().sum(), (q, k, v))
        _sync(query.device)
        seconds[name] = (time.perf_counter() - start) / 3
    best = min(seconds, key=seconds.__getitem__)
    log.warning(
        "segment attention on %s: %s (measured fwd+bwd per layer call at %d tokens: %s)",
        query.device.type,
        best,
        query.shape[2],
        ", ".join(f"{n} {s * 1e3:.2f} ms" for n, s in seconds.items()),
    )
    return best


def segment_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    layout: SegmentLayout,
    dropout: float = 0.0,
    scaling: float | None = None,
    window: int | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """Attention of a packed row [1, H, T, D] under `layout`; returns [1, T, H, D] like HF's kernels."""
    if query.shape[0] != 1:
        raise ValueError(f"segment attention expects one packed row, got a batch of {query.shape[0]} rows")
    if window is not None and window >= layout.longest_position + 1:
        window = None  # the window covers every segment: plain (cheaper) masks
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (query, key, value))
    device = query.device.type
    kernel = choose_kernel(
        layout.requested, device, query.dtype, needs_grad, layout.shares_prefix, flash_available()
    )
    if layout.requested == "flex" and kernel == "sdpa":
        _note_once(
            "flex-cpu-grad",
            f"segment attention: flex_attention has no backward on {device} in torch "
            f"{torch.__version__}; calls that need gradients use sdpa",
        )
    elif layout.requested == "auto" and kernel in ("sdpa", "flash_varlen"):
        _note_once(
            f"auto-{device}-{kernel}",
            f"segment attention on {device}: {kernel} (model.segment_attention=auto; "
            + (
                "flash-attn varlen: plain packing, no shared prompts)"
                if kernel == "flash_varlen"
                else "on the CPU flex measured slower and cannot train; see README 'Speed')"
            ),
        )
    sdpa = lambda q, k, v: sdpa_segments(q, k, v, layout, dropout, scaling, window, softcap)
    flex = lambda q, k, v: flex_row(q, k, v, layout, scaling, window, softcap)
    if kernel == "measure":
        kernel = MEASURED[device] = _measure(query, key, value, {"sdpa": sdpa, "flex": flex})
    if kernel == "flash_varlen":
        return flash_varlen(query, key, value, layout, dropout, scaling, window, softcap)
    if kernel == "flex" and dropout == 0.0:  # flex_attention has no attention dropout
        return flex(query, key, value)
    return sdpa(query, key, value)
