"""Turn validated records into token ids with the model's chat template.

Prompt and response ids are kept apart: the collator masks prompt tokens from the loss,
and packing/prefix-sharing layouts reuse one prompt for several responses.

Length policy (tokens are never cut out of a message):
- the system message(s) and the last user turn (where the constraints are) are always kept
  whole: cutting them would silently erase RPO's rewritten constraints or the only difference
  between IOPO's x1 and x2;
- when a prompt does not fit `max_prompt_length`, or prompt + longest response does not fit
  `max_length`, the oldest turns of the history are dropped, one exchange at a time;
- an example that still does not fit is dropped with its real reason (prompt vs response too
  long), and an IOPO quad whose x1 and x2 have become identical token ids is dropped too; the
  caller counts every drop with the record's file:line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from ifpo.data.records import FIELDS, RESPONSE_FIELDS, SOURCE_KEY, Messages
from ifpo.models.loading import require_chat_template

# role -> (prompt field, response field) for each record kind.
ROLE_FIELDS: dict[str, tuple[str, str]] = {
    "chosen": ("prompt", "chosen"),
    "rejected": ("prompt", "rejected"),
    "x1y1": ("x1", "y1"),
    "x2y2": ("x2", "y2"),
    "x1y2": ("x1", "y2"),
    "x2y1": ("x2", "y1"),
}

# Drop reasons (the SkipCounter groups by these exact strings).
PROMPT_TOO_LONG = "prompt too long: system message + last user turn exceed max_prompt_length (never cut)"
RESPONSE_TOO_LONG = "response too long: does not fit max_length beside the uncut prompt"
QUAD_PROMPTS_IDENTICAL = "x1 and x2 identical after tokenization (history dropped to fit?)"


@dataclass(frozen=True)
class TokenizeSettings:
    max_length: int
    max_prompt_length: int


def _template_ids(
    tokenizer: PreTrainedTokenizerBase, messages: Messages, add_generation_prompt: bool
) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])


def encode_prompt_response(
    tokenizer: PreTrainedTokenizerBase, prompt: Messages, response: Messages
) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) such that prompt + response is the templated conversation."""
    require_chat_template(tokenizer)  # the same template eval and sampling render with
    prompt_ids = _template_ids(tokenizer, prompt, add_generation_prompt=True)
    full_ids = _template_ids(tokenizer, prompt + response, add_generation_prompt=False)
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError(
            "the chat template renders the prompt differently with and without the response; "
            "cannot separate prompt from response tokens for this tokenizer"
        )
    return prompt_ids, full_ids[len(prompt_ids) :]


def history_variants(messages: Messages) -> list[Messages]:
    """The prompt with 0, 1, 2, ... of its oldest exchanges dropped; system and last user turn always kept.

    An exchange starts at a user message and runs up to the next one, so the remaining history
    still alternates the way chat templates expect.
    """
    head = 0
    while head < len(messages) and messages[head]["role"] == "system":
        head += 1
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=len(messages) - 1)
    last_user = max(last_user, head)
    middle = messages[head:last_user]
    if not middle:
        return [messages]
    starts = [i for i, m in enumerate(middle) if m["role"] == "user" or i == 0]
    kept = [messages[:head] + middle[s:] + messages[last_user:] for s in starts]
    return kept + [messages[:head] + messages[last_user:]]


def fit_prompt(
    tokenizer: PreTrainedTokenizerBase,
    prompt: Messages,
    responses: list[Messages],
    settings: TokenizeSettings,
) -> tuple[list[int], list[list[int]], str]:
    """(prompt ids, response ids, reason): the longest history that fits and reason "", or the
    shortest history (system + last user turn, uncut) and why even that does not fit."""
    for variant in history_variants(prompt):
        encoded = [encode_prompt_response(tokenizer, variant, r) for r in responses]
        prompt_ids, response_ids = encoded[0][0], [ids for _, ids in encoded]
        longest = max(len(ids) for ids in response_ids)
        prompt_ok = settings.max_prompt_length <= 0 or len(prompt_ids) <= settings.max_prompt_length
        if prompt_ok and len(prompt_ids) + longest <= settings.max_length:
            return prompt_ids, response_ids, ""
    return prompt_ids, response_ids, PROMPT_TOO_LONG if not prompt_ok else RESPONSE_TOO_LONG


def tokenize_record(
    record: dict[str, Any], kind: str, tokenizer: PreTrainedTokenizerBase, settings: TokenizeSettings
) -> dict[str, Any]:
    """Token ids per prompt and response field, plus `keep`/`drop_reason` for the length policy.

    Each prompt is fitted once against all responses that continue it, so the shared prompt
    (packing with prefix sharing) is the same token sequence in every role.
    """
    responses = RESPONSE_FIELDS[kind]
    prompts = [f for f in FIELDS[kind] if f not in responses]
    out: dict[str, Any] = {
        "margin": record["margin"],
        "where": record.get(SOURCE_KEY, ""),
        "keep": True,
        "drop_reason": "",
    }
    out.update({f"{field}_ids": [] for field in FIELDS[kind]})
    for prompt_field in prompts:
        paired = [r for p, r in ROLE_FIELDS.values() if p == prompt_field and r in responses]
        paired = list(dict.fromkeys(paired))
        prompt_ids, response_ids, reason = fit_prompt(
            tokenizer, record[prompt_field], [record[r] for r in paired], settings
        )
        out[f"{prompt_field}_ids"] = prompt_ids
        if reason:  # ids kept for inspection; the caller drops the example and counts the reason
            out["keep"], out["drop_reason"] = False, reason
            out.update({f"{field}_ids": ids for field, ids in zip(paired, response_ids)})
            return out
        for field, ids in zip(paired, response_ids):
            if out[f"{field}_ids"] and out[f"{field}_ids"] != ids:
                raise ValueError(
                    f"{out['where'] or 'a record'}: the chat template renders {field} differently after "
                    "x1 and after x2; IOPO needs one token sequence per response"
                )
            out[f"{field}_ids"] = ids
    if kind == "quad" and out["x1_ids"] == out["x2_ids"]:
        out["keep"], out["drop_reason"] = False, QUAD_PROMPTS_IDENTICAL
    return out
