"""Per-sequence log-probs of the training path equal a naive per-sequence forward of the real model."""

from __future__ import annotations

import pytest
import torch

from ifpo.data.collate import PreferenceCollator
from ifpo.data.packed_collate import PackedPreferenceCollator
from ifpo.data.records import validate_record
from ifpo.data.tokenize import ROLE_FIELDS, TokenizeSettings, tokenize_record
from ifpo.losses import get_loss_head
from ifpo.models.forward import role_logps
from tests.real_model.conftest import PAIRS, QUADS

_NAIVE: dict[tuple[int, ...], float] = {}  # one naive forward per sequence, shared by the layouts


def _naive(model, prompt: list[int], response: list[int]) -> float:
    key = (len(prompt), *prompt, *response)
    if key not in _NAIVE:
        _NAIVE[key] = _naive_forward(model, prompt, response)
    return _NAIVE[key]


def _naive_forward(model, prompt: list[int], response: list[int]) -> float:
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    return float(logp[len(prompt) - 1 :].sum())


@pytest.mark.parametrize("head", ["dpo", "iopo"])
@pytest.mark.parametrize("layout", ["padded", "packed", "packed-shared-prefix"])
def test_training_logps_equal_a_naive_forward(smollm2, head, layout):
    model, tokenizer = smollm2
    kind, rows = ("quad", QUADS) if head == "iopo" else ("pair", PAIRS)
    settings = TokenizeSettings(max_length=96, max_prompt_length=64)
    examples = [
        tokenize_record(validate_record(r, kind, "t", i), kind, tokenizer, settings)
        for i, r in enumerate(rows)
    ]
    assert all(e["keep"] for e in examples)
    roles = get_loss_head(head).roles
    collator = (
        PreferenceCollator(roles, tokenizer.pad_token_id)
        if layout == "padded"
        else PackedPreferenceCollator(roles, prefix_sharing=layout.endswith("shared-prefix"))
    )
    batch = collator(examples)
    with torch.no_grad():
        logps, tokens = role_logps(model, batch, chunk_size=7)  # small chunks: the chunked path runs several
    for role in roles:
        prompt_field, response_field = ROLE_FIELDS[role]
        for i, example in enumerate(examples):
            expected = _naive(model, example[f"{prompt_field}_ids"], example[f"{response_field}_ids"])
            assert logps[role][i].item() == pytest.approx(expected, abs=2e-3), (role, i)
            assert tokens[role][i].item() == len(example[f"{response_field}_ids"])
