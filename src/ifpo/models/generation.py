"""Batched chat generation for evaluation: HF ``generate`` everywhere, vLLM optionally on GPU.

Every benchmark hands a list of chat conversations (``[{"role", "content"}, ...]``) to a
:class:`Generator` and gets one response string per conversation, in input order. Prompts
go through the tokenizer's chat template with ``add_generation_prompt=True``, so the model
sees exactly the format it was trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ifpo.models.loading import eos_token_ids, require_chat_template

log = logging.getLogger(__name__)

Conversation = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding knobs shared by every backend (greedy unless ``do_sample``)."""

    max_new_tokens: int = 1280
    batch_size: int = 8
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


class Generator(Protocol):
    def generate(self, conversations: Sequence[Conversation], desc: str = "generating") -> list[str]:
        """One response per conversation, in input order."""
        ...


def chat_prompts(tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Conversation]) -> list[str]:
    """Conversations rendered by the tokenizer's chat template, ending with the assistant cue."""
    require_chat_template(tokenizer)  # the same template training tokenized with
    return [
        tokenizer.apply_chat_template([dict(m) for m in c], tokenize=False, add_generation_prompt=True)
        for c in conversations
    ]


class HFGenerator:
    """Left-padded batched ``model.generate``; batches are formed from length-sorted prompts.

    Sorting by length keeps padding (wasted compute) small; results are put back in input order.
    """

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, settings: GenerationSettings
    ) -> None:
        self.model, self.tokenizer, self.settings = model, tokenizer, settings

    @torch.no_grad()
    def generate(self, conversations: Sequence[Conversation], desc: str = "generating") -> list[str]:
        prompts = chat_prompts(self.tokenizer, conversations)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
        outputs: list[str] = [""] * len(prompts)
        size = self.settings.batch_size
        was_training = self.model.training
        self.model.eval()
        padding_side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # generated tokens must follow the prompt directly
        try:
            bar = tqdm(total=len(prompts), desc=desc, disable=not self.settings.show_progress, leave=False)
            for start in range(0, len(order), size):
                index = order[start : start + size]
                for i, text in zip(index, self._generate_batch([prompts[i] for i in index])):
                    outputs[i] = text
                bar.update(len(index))
            bar.close()
        finally:
            self.tokenizer.padding_side = padding_side
            self.model.train(was_training)
        return outputs

    def _generate_batch(self, prompts: list[str]) -> list[str]:
        s = self.settings
        # The chat template already writes any special tokens it wants (BOS included).
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(self.model.device)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p}
            if s.do_sample
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        generated = self.model.generate(
            **batch,
            max_new_tokens=s.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=eos_token_ids(self.model, self.tokenizer),
            use_cache=True,
            **sampling,
        )
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


class VLLMGenerator:
    """vLLM offline engine (GPU only); imported lazily so CPU installs never need it."""

    def __init__(
        self, name_or_path: str, settings: GenerationSettings, dtype: str = "bfloat16",
        chat_template: str | None = None, stop_token_ids: Sequence[int] = (), **engine: Any,
    ) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:  # pragma: no cover - depends on the GPU install
            raise ImportError(
                "eval.generation.backend=vllm needs the vllm package (GPU installs only); "
                "use eval.generation.backend=hf"
            ) from exc
        self.settings = settings
        self.chat_template = chat_template  # the template training used (model.chat_template applied)
        self.llm = LLM(model=name_or_path, dtype=dtype, **engine)
        self.params = SamplingParams(
            stop_token_ids=list(stop_token_ids),  # every EOS id of the generation config
            max_tokens=settings.max_new_tokens,
            temperature=settings.temperature if settings.do_sample else 0.0,
            top_p=settings.top_p if settings.do_sample else 1.0,
        )

    def generate(
        self, conversations: Sequence[Conversation], desc: str = "generating"
    ) -> list[str]:  # pragma: no cover
        results = self.llm.chat(
            [[dict(m) for m in c] for c in conversations], self.params, use_tqdm=self.settings.show_progress,
            chat_template=self.chat_template,
        )
        return [r.outputs[0].text.strip() for r in results]


def generate_resumable(
    generator_factory: Any,
    keys: Sequence[str],
    conversations: Sequence[Conversation],
    store: Any,
    *,
    chunk_size: int,
    desc: str = "generating",
) -> dict[str, str]:
    """``key -> response`` for every conversation, skipping keys ``store`` already holds.

    Responses are generated ``chunk_size`` at a time and each chunk is written to ``store``
    (a :class:`~ifpo.eval.progress.ProgressStore`) before the next starts, so an interruption
    loses at most one chunk. ``generator_factory`` is only called when something is left to do:
    a fully resumed run never loads a model.
    """
    if len(keys) != len(conversations):
        raise ValueError(f"{len(keys)} keys for {len(conversations)} conversations")
    todo = [i for i, key in enumerate(keys) if key not in store]
    if todo:
        if len(todo) < len(keys):
            done = len(keys) - len(todo)
            log.info("%s: %d of %d responses already saved; generating the rest", desc, done, len(keys))
        generator = generator_factory()
        for start in range(0, len(todo), max(1, chunk_size)):
            chunk = todo[start : start + chunk_size]
            texts = generator.generate([conversations[i] for i in chunk], desc=desc)
            for i, text in zip(chunk, texts):
                store.put(keys[i], text)
    return {key: store.get(key) for key in keys}
