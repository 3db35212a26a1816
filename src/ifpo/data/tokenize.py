"""Turn validated records into token ids with the tokenizer's chat template.

Prompt and response ids are kept apart: the collator masks prompt tokens from the loss,
and packing/prefix-sharing layouts reuse one prompt for several responses.
Truncation policy: prompts are cut from the *left* beyond `max_prompt_length` (the most
recent turns and the final instruction survive); responses are never cut, so an example
whose response cannot fit `max_length` is dropped and counted by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from ifpo.data.records import FIELDS, RESPONSE_FIELDS, Messages

# role -> (prompt field, response field) for each record kind.
ROLE_FIELDS: dict[str, tuple[str, str]] = {
    "chosen": ("prompt", "chosen"),
    "rejected": ("prompt", "rejected"),
    "x1y1": ("x1", "y1"),
    "x2y2": ("x2", "y2"),
    "x1y2": ("x1", "y2"),
    "x2y1": ("x2", "y1"),
}


@dataclass(frozen=True)
class TokenizeSettings:
    max_length: int
    max_prompt_length: int


def _template_ids(tokenizer: PreTrainedTokenizerBase, messages: Messages, add_generation_prompt: bool) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])


def encode_prompt_response(
    tokenizer: PreTrainedTokenizerBase, prompt: Messages, response: Messages
) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) such that prompt + response is the templated conversation."""
    if tokenizer.chat_template is None:
        # Base models without a chat template: plain concatenation, response ends with EOS.
        prompt_text = "\n\n".join(m["content"] for m in prompt) + "\n\n"
        prompt_ids = tokenizer(prompt_text, add_special_tokens=True)["input_ids"]
        response_ids = tokenizer("".join(m["content"] for m in response), add_special_tokens=False)["input_ids"]
        return list(prompt_ids), list(response_ids) + [tokenizer.eos_token_id]
    prompt_ids = _template_ids(tokenizer, prompt, add_generation_prompt=True)
    full_ids = _template_ids(tokenizer, prompt + response, add_generation_prompt=False)
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError(
            "the chat template renders the prompt differently with and without the response; "
            "cannot separate prompt from response tokens for this tokenizer"
        )
    return prompt_ids, full_ids[len(prompt_ids):]


def tokenize_record(
    record: dict[str, Any], kind: str, tokenizer: PreTrainedTokenizerBase, settings: TokenizeSettings
) -> dict[str, Any]:
    """Token ids per prompt and response field, plus `keep`/`drop_reason` for the length policy."""
    prompts = [f for f in FIELDS[kind] if f not in RESPONSE_FIELDS[kind]]
    out: dict[str, Any] = {"margin": record["margin"], "keep": True, "drop_reason": ""}
    for prompt_field, response_field in ROLE_FIELDS.values():
        if prompt_field not in prompts or response_field not in RESPONSE_FIELDS[kind]:
            continue
        prompt_ids, response_ids = encode_prompt_response(tokenizer, record[prompt_field], record[response_field])
        prompt_ids = prompt_ids[-settings.max_prompt_length:] if settings.max_prompt_length > 0 else prompt_ids
        out[f"{prompt_field}_ids"] = prompt_ids
        out[f"{response_field}_ids"] = response_ids
        if len(prompt_ids) + len(response_ids) > settings.max_length:
            out["keep"], out["drop_reason"] = False, "response does not fit max_length"
    return out
