"""What every sampler takes and returns, and how seeds are derived."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class SampleRequest:
    """One prompt to answer.

    ``key`` is the source id (the responses-file backend looks answers up by it);
    ``messages`` is the whole chat so far (system prompt, history, last user turn);
    ``constraints`` and ``context`` are only read by the synthetic writer backend.
    """

    key: str
    messages: Messages
    constraints: tuple[Any, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)


class Sampler(Protocol):
    def sample(self, requests: Sequence[SampleRequest], n: int, seed: int) -> list[list[str]]:
        """``n`` responses per request, in request order; the same seed gives the same answers."""
        ...


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
