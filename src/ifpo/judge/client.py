"""A small, careful client for OpenAI-compatible chat-completions endpoints.

We use ``httpx`` directly rather than the ``openai`` package: the official
client runs its own hidden retry loop and timeout policy, and we need to own
both (count attempts, retry malformed answers through the same backoff path,
honour ``Retry-After``, keep the key out of every message) while talking to any
vLLM/OpenAI-compatible server. The request body is plain JSON, so little is lost.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from typing_extensions import Self

from ifpo.judge.cache import ResponseCache
from ifpo.judge.concurrency import map_bounded
from ifpo.judge.config import JudgeConfig
from ifpo.judge.deadline import deadline, deadline_transport, remaining
from ifpo.judge.errors import JudgeError, redact
from ifpo.judge.verdicts import (
    ConstraintJudgement,
    JudgeRequest,
    build_judge_messages,
    parse_verdicts,
)

log = logging.getLogger(__name__)

OnError = Literal["raise", "record"]
_RETRYABLE_STATUS = {408, 409, 425, 429}


class _Retryable(Exception):
    """One attempt failed in a way that may pass on a later try."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class CallStats:
    """Counters a run can log (and tests assert): what the judge actually cost."""

    http_requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


class JudgeClient:
    """Chat with an OpenAI-compatible endpoint: retries, backoff, cache, concurrency, clean secrets."""

    def __init__(
        self,
        config: JudgeConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        show_progress: bool = True,
    ) -> None:
        self.config = config
        self._api_key = config.read_api_key()
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limits = httpx.Limits(
            max_connections=config.concurrency, max_keepalive_connections=config.concurrency
        )
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            limits=limits,
            # timeout_s is a total per attempt, not per socket read (see ifpo.judge.deadline)
            transport=transport or deadline_transport(limits),
        )
        self._cache = ResponseCache(config.cache_dir) if config.cache_dir else None
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._show_progress = show_progress
        self.stats = CallStats()

    def __repr__(self) -> str:
        # Only the config (which holds the env var *name*, never its value).
        return f"JudgeClient(config={self.config!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ chat
    def chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        validate: Callable[[str], object] | None = None,
        **params: Any,
    ) -> str:
        """The assistant text for ``messages``; ``params`` override temperature, max_tokens, etc.

        ``validate`` raises ``ValueError`` on an unusable answer; such answers are retried
        like transport errors and are never cached. Raises :class:`JudgeError` when every
        attempt failed.
        """
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [dict(m) for m in messages],
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            **params,
        }
        cached = self._cache.get(body) if self._cache else None
        if cached is not None and self._passes(validate, cached):
            self._count("cache_hits")
            return cached

        attempts = self.config.max_retries + 1
        last_problem = "no attempt made"
        item_deadline = self.config.item_deadline_s
        end = math.inf if item_deadline is None else time.monotonic() + item_deadline
        made = 0
        for attempt in range(attempts):
            retry_after: float | None = None
            limit = min(self.config.timeout_s, remaining(end))
            if limit <= 0:
                break
            made += 1
            try:
                with deadline(limit):
                    answer = self._post_once(body, limit)
                if validate is not None:
                    validate(answer)
            except _Retryable as exc:
                last_problem, retry_after = str(exc), exc.retry_after_s
            except ValueError as exc:
                last_problem = f"malformed answer: {redact(str(exc), self._api_key)}"
            else:
                if self._cache is not None:
                    self._cache.put(body, answer)
                return answer
            if attempt + 1 < attempts:
                delay = self._backoff_delay(attempt, retry_after)
                if delay >= remaining(end):
                    last_problem += f"; no time left for a retry within item_deadline_s={item_deadline}"
                    break
                self._count("retries")
                log.warning(
                    "judge attempt %d/%d failed (%s); retrying in %.2fs",
                    attempt + 1,
                    attempts,
                    last_problem,
                    delay,
                )
                self._sleep(delay)
        self._count("failures")
        raise JudgeError(
            f"judge call to model {self.config.model!r} failed after {made} attempt(s): {last_problem}",
            attempts=made,
        )

    # ----------------------------------------------------------------- judge
    def judge(self, request: JudgeRequest) -> ConstraintJudgement:
        """Grade every constraint of one response in one call; raises JudgeError on failure."""
        n = len(request.constraints)
        answer = self.chat(build_judge_messages(request), validate=lambda text: parse_verdicts(text, n))
        satisfied, reasons = parse_verdicts(answer, n)
        return ConstraintJudgement(constraints=request.constraints, satisfied=satisfied, reasons=reasons)

    def judge_many(
        self,
        requests: Sequence[JudgeRequest],
        *,
        on_error: OnError = "raise",
        desc: str = "judging",
    ) -> list[ConstraintJudgement]:
        """Judge a batch with at most ``config.concurrency`` calls in flight, results in input order.

        ``on_error="record"`` turns a failed call into a ``ConstraintJudgement`` with ``error``
        set (and logs it) instead of aborting the batch.
        """
        if on_error not in ("raise", "record"):
            raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")

        def one(request: JudgeRequest) -> ConstraintJudgement:
            try:
                return self.judge(request)
            except JudgeError as exc:
                if on_error == "raise":
                    raise
                log.error("recording failed judgement: %s", exc)
                return ConstraintJudgement.failure(request.constraints, str(exc))

        return map_bounded(
            one, requests, max_workers=self.config.concurrency, desc=desc, show_progress=self._show_progress
        )

    # ------------------------------------------------------------- internals
    def _post_once(self, body: dict[str, Any], limit_s: float | None = None) -> str:
        self._count("http_requests")
        started = time.monotonic()
        try:
            response = self._http.post("chat/completions", json=body)
        except httpx.TimeoutException:
            limit = self.config.timeout_s if limit_s is None else limit_s
            raise _Retryable(
                f"request timed out after {time.monotonic() - started:.1f}s (limit {limit:.3g}s per attempt)"
            ) from None
        except httpx.TransportError as exc:
            raise _Retryable(
                f"connection error: {type(exc).__name__}: {redact(str(exc), self._api_key)}"
            ) from None
        status = response.status_code
        excerpt = redact(response.text[:300], self._api_key)
        if status in _RETRYABLE_STATUS or status >= 500:
            raise _Retryable(f"HTTP {status}: {excerpt}", retry_after_s=_retry_after_seconds(response))
        if status >= 400:
            self._count("failures")
            raise JudgeError(
                f"judge endpoint refused the request with HTTP {status} (not retried): {excerpt}", attempts=1
            )
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retryable(f"response body is not a chat completion: {excerpt}") from None
        if not isinstance(content, str):
            raise _Retryable("chat completion has no text content")
        return content

    def _backoff_delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter, raised to the server's Retry-After, capped."""
        base = min(self.config.max_backoff_s, self.config.backoff_s * (2**attempt))
        delay = base * self._rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.config.max_backoff_s))
        return delay

    @staticmethod
    def _passes(validate: Callable[[str], object] | None, answer: str) -> bool:
        if validate is None:
            return True
        try:
            validate(answer)
        except ValueError:
            return False
        return True

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)
