"""Settings for talking to an OpenAI-compatible judge endpoint.

The dataclass holds no secret: the API key is read from the environment
variable named by ``api_key_env`` at call time, so this object can be saved
with a run's Hydra config, logged, or printed without leaking the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge lives and how hard to try reaching it.

    A Hydra config group (``judge/``) maps one-to-one onto these fields.
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "judge"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    concurrency: int = 8
    cache_dir: str | None = "outputs/judge_cache"
    temperature: float = 0.0
    max_tokens: int = 1024

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ValueError("JudgeConfig.base_url must be non-empty")
        if not self.model:
            raise ValueError("JudgeConfig.model must be non-empty")
        if not self.api_key_env:
            raise ValueError("JudgeConfig.api_key_env must name an environment variable")
        if self.timeout_s <= 0:
            raise ValueError(f"JudgeConfig.timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"JudgeConfig.max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("JudgeConfig.backoff_s and max_backoff_s must be >= 0")
        if self.concurrency < 1:
            raise ValueError(f"JudgeConfig.concurrency must be >= 1, got {self.concurrency}")
        if self.max_tokens < 1:
            raise ValueError(f"JudgeConfig.max_tokens must be >= 1, got {self.max_tokens}")

    def read_api_key(self) -> str | None:
        """The key from the environment, or None (local vLLM servers need none)."""
        value = os.environ.get(self.api_key_env, "").strip()
        return value or None
