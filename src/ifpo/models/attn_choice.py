"""Which attention kernel a model is built with: `model.attn_implementation: auto` resolves here.

`auto` picks flash_attention_2 only where it can run (flash-attn importable, a CUDA device, a 16-bit
dtype), else PyTorch's SDPA, so the paper experiments load on any machine instead of failing
inside transformers when the optional flash-attn wheel is missing. Packed batches go through
the segment attention of :mod:`ifpo.models.packing` whatever is chosen here; the choice applies
to padded batches (and generation). An explicit `flash_attention_2` without flash-attn is
refused with the fix, rather than with transformers' ImportError deep inside `from_pretrained`.
"""

from __future__ import annotations

import functools
import logging

import torch
from transformers.utils import is_flash_attn_2_available

log = logging.getLogger(__name__)

FLASH = "flash_attention_2"
HALF_DTYPES = ("bfloat16", "float16")
INSTALL_HINT = 'pip install --no-build-isolation "flash-attn>=2.6" (the `gpu` extra of pyproject.toml)'


def flash_usable(dtype: str) -> tuple[bool, str]:
    """(usable, why) for flash_attention_2 with weights in `dtype` on this machine."""
    if not is_flash_attn_2_available():
        return False, "flash-attn is not importable"
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    if dtype not in HALF_DTYPES:
        return False, f"dtype {dtype} (flash-attn needs bfloat16/float16)"
    return True, "flash-attn importable, CUDA, 16-bit weights"


def resolve_attn_implementation(requested: str | None, dtype: str) -> str:
    """The attn_implementation to pass to transformers for `requested` (auto|sdpa|eager|flash_attention_2)."""
    requested = requested or "auto"
    usable, why = flash_usable(dtype)
    if requested == "auto":
        chosen = FLASH if usable else "sdpa"
        _log_once(f"attention: {chosen} (model.attn_implementation=auto: {why})")
        return chosen
    if requested == FLASH and not usable:
        raise ValueError(
            f"model.attn_implementation=flash_attention_2 cannot run here: {why}. "
            f"Use model.attn_implementation=auto (flash-attn where it runs, sdpa elsewhere) or sdpa; "
            f"to get flash-attn: {INSTALL_HINT}"
        )
    _log_once(f"attention: {requested} (model.attn_implementation={requested})")
    return requested


@functools.cache
def _log_once(message: str) -> None:
    """The policy and its reference resolve the same choice: say it once per process."""
    log.info("%s", message)
