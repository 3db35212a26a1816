"""Padding-free batch layout: every sequence of a micro-batch in ONE row, prompts shared.

With `prefix_sharing`, the responses of an example that continue the same prompt form one
segment: a pair becomes [prompt, chosen, rejected], an IOPO quad [x1, y1, y2] and [x2, y2, y1].
Each response's positions continue from the end of the prompt and it attends to the prompt
but not to its sibling (see ifpo.models.packing). Without it, every (prompt, response)
sequence is its own segment, i.e. plain packing with a block-diagonal causal mask.

Instead of shifted labels the batch names, for every response token, the row position whose
hidden state predicts it (`logp_index`; for a response's first token that is the prompt's last
token, which is not adjacent for the second response of a segment), its id (`logp_target`)
and its sequence (`logp_sequence`, role-major: role r of example i is r * B + i, the same
order as the padded collator, so heads slice roles identically). The result is a typed
ifpo.models.batch.PackedBatch carrying the loss head's roles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ifpo.data.tokenize import ROLE_FIELDS
from ifpo.models.batch import PackedBatch


class PackedPreferenceCollator:
    """Tokenised examples -> PackedBatch; `roles` are the loss head's, given once here."""

    def __init__(
        self, roles: Sequence[str], prefix_sharing: bool = True, pad_to_multiple_of: int = 8
    ) -> None:
        self.roles = tuple(roles)
        self.prefix_sharing = prefix_sharing
        self.pad_to_multiple_of = pad_to_multiple_of
        # prompt field -> [(role index, response field)], prompts in order of first use.
        self.by_prompt: dict[str, list[tuple[int, str]]] = {}
        for index, role in enumerate(self.roles):
            prompt_field, response_field = ROLE_FIELDS[role]
            self.by_prompt.setdefault(prompt_field, []).append((index, response_field))

    def _segments(
        self, examples: list[dict[str, Any]]
    ) -> list[tuple[list[int], list[tuple[int, list[int]]]]]:
        """[(prompt ids, [(sequence id, response ids), ...])] in row order."""
        size = len(examples)
        segments = []
        for i, example in enumerate(examples):
            for prompt_field, responses in self.by_prompt.items():
                prompt = list(example[f"{prompt_field}_ids"])
                continuations = [(r * size + i, list(example[f"{field}_ids"])) for r, field in responses]
                if self.prefix_sharing:
                    segments.append((prompt, continuations))
                else:
                    segments.extend((prompt, [c]) for c in continuations)
        return segments

    def __call__(self, examples: list[dict[str, Any]]) -> PackedBatch:
        segments = self._segments(examples)
        ids: list[int] = []
        positions: list[int] = []
        logp_index: list[int] = []
        logp_target: list[int] = []
        logp_sequence: list[int] = []
        seg_lengths: list[int] = []
        branches: list[list[int]] = []
        counts = [0] * (len(self.roles) * len(examples))
        for prompt, continuations in segments:
            start = len(ids)
            ids += prompt
            positions += range(len(prompt))
            branch = [0] * len(prompt)
            for k, (sequence, response) in enumerate(continuations, start=1):
                # The prompt's last token predicts the first response token; an empty prompt
                # leaves the first token unpredicted, as in the padded layout.
                predictor = start + len(prompt) - 1
                for offset, token in enumerate(response):
                    if predictor >= start:
                        logp_index.append(predictor)
                        logp_target.append(token)
                        logp_sequence.append(sequence)
                        counts[sequence] += 1
                    predictor = len(ids) + offset
                ids += response
                positions += range(len(prompt), len(prompt) + len(response))
                branch += [k] * len(response)
            seg_lengths.append(len(ids) - start)
            branches.append(branch)
        longest = max(seg_lengths)
        if self.pad_to_multiple_of > 1:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        seg_index = torch.zeros(len(segments), longest, dtype=torch.long)
        branch_ids = torch.full((len(segments), longest), -1, dtype=torch.long)
        token_segment = torch.empty(len(ids), dtype=torch.long)
        token_offset = torch.empty(len(ids), dtype=torch.long)
        start = 0
        for s, (length, branch) in enumerate(zip(seg_lengths, branches)):
            seg_index[s, :length] = torch.arange(start, start + length)
            branch_ids[s, :length] = torch.tensor(branch)
            token_segment[start : start + length] = s
            token_offset[start : start + length] = torch.arange(length)
            start += length
        return PackedBatch(
            input_ids=torch.tensor([ids], dtype=torch.long),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            position_ids=torch.tensor([positions], dtype=torch.long),
            seg_index=seg_index,
            # Branch ids, not a dense mask: each attention kernel builds the mask it needs
            # (ifpo.models.packing.SegmentLayout), so no [segments, L, L] tensor is collated.
            seg_branch=branch_ids,
            token_segment=token_segment,
            token_offset=token_offset,
            logp_index=torch.tensor(logp_index, dtype=torch.long),
            logp_target=torch.tensor(logp_target, dtype=torch.long),
            logp_sequence=torch.tensor(logp_sequence, dtype=torch.long),
            token_counts=torch.tensor(counts, dtype=torch.long),
            margin=torch.tensor([float(e["margin"]) for e in examples], dtype=torch.float32),
            roles=self.roles,
        )
