"""Settings for talking to an OpenAI-compatible judge endpoint.

The dataclass holds no secret: the API key is read from the environment
variable named by ``api_key_env`` at call time, so this object can be saved
with a run's Hydra config, logged, or printed without leaking the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge lives and how hard to try reaching it.

    A Hydra config group (``judge/``) maps one-to-one onto these fields.
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "judge"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = (
        60.0  # total wall-clock time of one attempt (connect + send + every byte of the answer)
    )
    item_deadline_s: float | None = 600.0  # total for one item over all attempts and backoffs; null: none
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
        if self.item_deadline_s is not None and self.item_deadline_s <= 0:
            raise ValueError(f"JudgeConfig.item_deadline_s must be > 0 or null, got {self.item_deadline_s}")
        if self.max_retries < 0:
            raise ValueError(f"JudgeConfig.max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("JudgeConfig.backoff_s and max_backoff_s must be >= 0")
        if self.concurrency < 1:
            raise ValueError(f"JudgeConfig.concurrency must be >= 1, got {self.concurrency}")
        if self.max_tokens < 1:
            raise ValueError(f"JudgeConfig.max_tokens must be >= 1, got {self.max_tokens}")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any], where: str = "judge") -> JudgeConfig:
        """From a config node: an unknown key (a typo, or a secret that belongs in the environment) is
        refused."""
        allowed = [f.name for f in fields(cls)]
        unknown = [key for key in settings if key not in allowed]
        if unknown:
            hint = (
                f" (put the key itself in the environment variable named by {where}.api_key_env)"
                if any("key" in k or "token" in k or "secret" in k for k in unknown)
                else ""
            )
            raise ValueError(
                f"{where} has no option {', '.join(f'{where}.{k}' for k in unknown)}{hint}; "
                f"its options are: {', '.join(allowed)}"
            )
        return cls(**settings)

    def read_api_key(self) -> str | None:
        """The key from the environment, or None (local vLLM servers need none)."""
        value = os.environ.get(self.api_key_env, "").strip()
        return value or None
