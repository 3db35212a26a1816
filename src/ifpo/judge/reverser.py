"""Reverse free-text constraints with an LLM (for RPO-style negative instructions).

Another module owns the rules prompt (how to negate a constraint); this class
only sends it with the instruction, checks the answer is usable, and caches it
per instruction so a rerun costs nothing.
"""

from __future__ import annotations

from typing import Any, Protocol


class ChatBackend(Protocol):
    """What the reverser needs from a client (``JudgeClient`` fits)."""

    def chat(self, messages: list[dict[str, str]], *, validate: Any = None, **params: Any) -> str: ...


class ReversalError(ValueError):
    """The model's reversal is unusable (empty or identical to the input)."""


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()


class LLMConstraintReverser:
    """Turn a constraint into its reversed form by asking a chat model, with the caller's rules.

    ``rules_prompt`` goes in the system message; the constraint text is the user
    message. Answers are cached in memory per input text, and on disk by the
    client's request cache.
    """

    def __init__(self, client: ChatBackend, rules_prompt: str, **chat_params: Any) -> None:
        if not rules_prompt.strip():
            raise ValueError("LLMConstraintReverser needs a non-empty rules prompt")
        self._client = client
        self._rules_prompt = rules_prompt
        self._chat_params = chat_params
        self._memo: dict[str, str] = {}

    def __call__(self, instruction: str) -> str:
        return self.reverse(instruction)

    def reverse(self, instruction: str) -> str:
        """The reversed constraint text; raises ReversalError (via the client's retries) if unusable."""
        if not instruction.strip():
            raise ValueError("cannot reverse an empty constraint")
        if instruction in self._memo:
            return self._memo[instruction]
        messages = [
            {"role": "system", "content": self._rules_prompt},
            {"role": "user", "content": instruction},
        ]

        def validate(answer: str) -> None:
            self._check(instruction, answer)

        # ``validate`` makes the client retry (and never cache) an unusable answer.
        answer = self._client.chat(messages, validate=validate, **self._chat_params)
        self._check(instruction, answer)
        reversed_text = answer.strip()
        self._memo[instruction] = reversed_text
        return reversed_text

    @staticmethod
    def _check(instruction: str, answer: str) -> None:
        if not isinstance(answer, str) or not answer.strip():
            raise ReversalError("the reverser model returned an empty answer")
        if _normalised(answer) == _normalised(instruction):
            raise ReversalError("the reverser model returned the constraint unchanged")
