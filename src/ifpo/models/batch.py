"""The two batch layouts a training step consumes, as typed dataclasses.

The collators of ifpo.data build them, the forward (ifpo.models.forward / packing) reads them,
the loss heads read `margin` and the module `reference_logps`. They live here, in the models
layer, rather than in data where they are built, because models reads them and the layers point
one way (models -> data): data imports the types from below instead of models reaching up.

Rows are role-major in both layouts: sequence r * B + i is role `roles[r]` of example i (B the
batch size), so per-role results slice the same way whichever layout ran. `roles` comes from the
loss head once (through the collator) and travels with the batch; nothing else carries it.

Both are plain (not frozen) dataclasses: Lightning moves a batch to the device by calling its
`.to(device)` (any object with a `.to` is a transferable type), and its precision plugins walk
dataclass fields with `apply_to_collection`, which rebuilds a copy and refuses frozen ones.
Nothing mutates a batch in place; `with_reference` returns a new one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # typing.Self is 3.11+ and the package supports 3.10; annotations only
    from typing_extensions import Self


def _move(value: Any, device: torch.device | str, **kwargs: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, **kwargs)
    if isinstance(value, dict):
        return {k: _move(v, device, **kwargs) for k, v in value.items()}
    return value


class _BatchMethods:
    """What both layouts share: size, device transfer, the attached reference."""

    margin: torch.Tensor
    roles: tuple[str, ...]
    reference_logps: dict[str, torch.Tensor] | None

    @property
    def batch_size(self) -> int:
        """Examples in the batch (B); there are len(roles) * B sequences."""
        return int(self.margin.shape[0])

    def to(self, device: torch.device | str, **kwargs: Any) -> Self:
        """A copy with every tensor on `device` (kwargs such as non_blocking go to Tensor.to)."""
        moved = {f.name: _move(getattr(self, f.name), device, **kwargs) for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **moved)  # type: ignore[type-var]

    def with_reference(self, reference_logps: dict[str, torch.Tensor]) -> Self:
        """A copy carrying precomputed reference log-probs {role: [B]} (ref.mode=precomputed)."""
        missing = [role for role in self.roles if role not in reference_logps]
        if missing:
            raise ValueError(f"reference log-probs lack roles {missing} of this batch {list(self.roles)}")
        return dataclasses.replace(self, reference_logps=dict(reference_logps))  # type: ignore[type-var]


@dataclass
class PaddedBatch(_BatchMethods):
    """One padded row per (role, example): built by ifpo.data.collate.PreferenceCollator.

    input_ids, attention_mask, labels: [len(roles) * B, L] (labels -100 outside the response);
    margin: float32 [B] (the record's margin, RPO's g); reference_logps: {role: float32 [B]}
    when a precomputed reference is attached, else None.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    margin: torch.Tensor
    roles: tuple[str, ...]
    reference_logps: dict[str, torch.Tensor] | None = None


@dataclass
class PackedBatch(_BatchMethods):
    """Every sequence in one padding-free row, prompts shared: ifpo.data.packed_collate.

    input_ids, attention_mask (all ones), position_ids: [1, T] (T real tokens, no padding);
    seg_index, seg_branch: [S, L] (S segments, L the longest, rounded up), the row position of
    each segment slot and its branch (0 prompt, k >= 1 the k-th response, -1 padding slot);
    token_segment, token_offset: [T], where each row position lives in the segment batch;
    logp_index, logp_target, logp_sequence: [N], for each of the N scored response tokens the
    row position whose hidden state predicts it, its id and its sequence (role-major);
    token_counts: [len(roles) * B] scored tokens per sequence; margin, reference_logps as in
    PaddedBatch.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    seg_index: torch.Tensor
    seg_branch: torch.Tensor
    token_segment: torch.Tensor
    token_offset: torch.Tensor
    logp_index: torch.Tensor
    logp_target: torch.Tensor
    logp_sequence: torch.Tensor
    token_counts: torch.Tensor
    margin: torch.Tensor
    roles: tuple[str, ...]
    reference_logps: dict[str, torch.Tensor] | None = None


#: Either layout: what the forward, the loss heads and the module accept.
Batch = PaddedBatch | PackedBatch
