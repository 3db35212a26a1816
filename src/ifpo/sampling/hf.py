"""Hugging Face ``generate`` sampler: left-padded batches, ``num_return_sequences=n``, seeded.

The model is a Hugging Face folder or the project's random-init ``model`` config, optionally
with a training ``.ckpt``'s ``policy.*`` weights (loaded by the eval harness's strict loader).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ifpo.config.plain import to_plain
from ifpo.models.checkpoint import load_policy
from ifpo.models.generation import chat_prompts
from ifpo.models.loading import eos_token_ids
from ifpo.sampling.base import SampleRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingSettings:
    """Decoding knobs (sampling on by default: preference data needs diverse answers)."""

    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    do_sample: bool = True
    batch_size: int = 8  # sequences (prompts x n) per generate call

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"sampler.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"sampler.batch_size must be >= 1, got {self.batch_size}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(
                f"sampling needs temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}"
            )


def load_sampling_model(
    model_cfg: Any, checkpoint: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer): ``checkpoint`` may be an HF folder or a training ``.ckpt``; None = ``model_cfg``
    as is."""
    if checkpoint and Path(checkpoint).is_dir():
        cfg = to_plain(model_cfg)
        cfg["name_or_path"] = str(checkpoint)
        cfg["tokenizer"] = cfg.get("tokenizer") or str(checkpoint)
        return load_policy(cfg)
    if checkpoint and not str(checkpoint).endswith(".ckpt"):
        raise ValueError(
            f"sampler.checkpoint={checkpoint!r}: expected a Hugging Face folder or a training .ckpt file"
        )
    return load_policy(model_cfg, checkpoint)


class HFSampler:
    """``model.generate`` over batches of prompts; each prompt yields ``n`` sequences."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, settings: SamplingSettings
    ) -> None:
        self.model, self.tokenizer, self.settings = model, tokenizer, settings

    @torch.no_grad()
    def sample(self, requests: Sequence[SampleRequest], n: int, seed: int) -> list[list[str]]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        prompts = chat_prompts(self.tokenizer, [r.messages for r in requests])
        per_call = max(1, self.settings.batch_size // n)
        out: list[list[str]] = []
        padding_side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # new tokens must follow each prompt directly
        self.model.eval()
        try:
            # fork_rng keeps the caller's global torch RNG untouched; one seed per call makes
            # the answers a function of (seed, prompts) only.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                for start in range(0, len(prompts), per_call):
                    out.extend(self._generate(prompts[start : start + per_call], n))
        finally:
            self.tokenizer.padding_side = padding_side
        return out

    def _generate(self, prompts: list[str], n: int) -> list[list[str]]:
        s = self.settings
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.model.device
        )
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": None}
            if s.do_sample
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        generated = self.model.generate(
            **batch,
            max_new_tokens=s.max_new_tokens,
            num_return_sequences=n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=eos_token_ids(self.model, self.tokenizer),
            **sampling,
        )
        texts = self.tokenizer.batch_decode(
            generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
        )
        texts = [t.strip() for t in texts]
        return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]
