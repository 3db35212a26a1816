"""Optional vLLM sampler (GPU installs only); imported lazily so CPU installs never need vllm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ifpo.sampling.base import SampleRequest
from ifpo.sampling.hf import SamplingSettings


class VLLMSampler:  # pragma: no cover - needs a GPU and the vllm package
    """vLLM offline engine; ``n`` samples per prompt via ``SamplingParams(n=..., seed=...)``."""

    def __init__(
        self, name_or_path: str, settings: SamplingSettings, chat_template: str | None = None,
        stop_token_ids: Sequence[int] = (), **engine: Any,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ImportError(
                "sampler.backend=vllm needs the vllm package (GPU installs); use sampler=hf"
            ) from exc
        self.settings = settings
        self.chat_template, self.stop_token_ids = chat_template, list(stop_token_ids)
        self.llm = LLM(model=name_or_path, **engine)

    def sample(self, requests: Sequence[SampleRequest], n: int, seed: int) -> list[list[str]]:
        from vllm import SamplingParams

        s = self.settings
        params = SamplingParams(
            n=n,
            seed=seed,
            max_tokens=s.max_new_tokens,
            temperature=s.temperature if s.do_sample else 0.0,
            top_p=s.top_p if s.do_sample else 1.0,
            stop_token_ids=self.stop_token_ids,
        )
        results = self.llm.chat(
            [list(r.messages) for r in requests], params, use_tqdm=False, chat_template=self.chat_template
        )
        return [[o.text.strip() for o in r.outputs] for r in results]
