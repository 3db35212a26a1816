"""Judge failures, with secrets scrubbed from every message."""

from __future__ import annotations


class JudgeError(RuntimeError):
    """A judge call failed for good (retries exhausted or a non-retryable answer)."""

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


def redact(text: str, secret: str | None) -> str:
    """Replace every occurrence of ``secret`` in ``text`` so it cannot reach logs or errors."""
    if secret and secret in text:
        return text.replace(secret, "***")
    return text
