"""Batch layout: one row per (role, example), all roles of a batch in one padded tensor.

Rows are ordered role-major: rows [r*B, (r+1)*B) hold role r for the B examples, so the
policy runs a single concatenated forward and heads slice per role. The result is a typed
ifpo.models.batch.PaddedBatch carrying the loss head's roles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ifpo.data.tokenize import ROLE_FIELDS
from ifpo.models.batch import PaddedBatch

IGNORE_INDEX = -100


class PreferenceCollator:
    """Tokenised examples -> PaddedBatch; `roles` are the loss head's, given once here."""

    def __init__(self, roles: Sequence[str], pad_token_id: int, pad_to_multiple_of: int = 8) -> None:
        self.roles = tuple(roles)
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict[str, Any]]) -> PaddedBatch:
        sequences: list[tuple[list[int], list[int]]] = []
        for role in self.roles:
            prompt_field, response_field = ROLE_FIELDS[role]
            for example in examples:
                sequences.append((example[f"{prompt_field}_ids"], example[f"{response_field}_ids"]))
        longest = max(len(p) + len(r) for p, r in sequences)
        if self.pad_to_multiple_of > 1:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(sequences), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(sequences), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        for row, (prompt, response) in enumerate(sequences):
            ids = prompt + response
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, len(prompt) : len(ids)] = torch.tensor(response)
            attention_mask[row, : len(ids)] = 1
        return PaddedBatch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            margin=torch.tensor([float(e["margin"]) for e in examples], dtype=torch.float32),
            roles=self.roles,
        )
