"""One forward over every row of a batch, to summed response log-probs per role.

The step both the policy and any reference (copy, adapter-disabled policy, the precomputed
pre-pass) take, so it lives with the models, below data and training.
"""

from __future__ import annotations

import torch

from ifpo.models.batch import Batch, PackedBatch
from ifpo.models.loading import decoder_and_head
from ifpo.models.logprobs import logit_transform, sequence_logprobs
from ifpo.models.packing import packed_hidden_states, packed_sequence_logprobs


def role_logps(
    model: torch.nn.Module, batch: Batch, chunk_size: int, segment_attention: str = "auto"
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Summed response log-probs and token counts per role from one forward over all rows.

    Packed batches (ifpo.data.packed_collate: one row, shared prompts) run through segment
    attention (kernel per `segment_attention`, see ifpo.models.segment_kernels); padded batches
    through the model's own attention. The LM head is applied with the model's own logit
    post-processing (logit scaling, final soft-capping), read from its config.
    """
    decoder, head = decoder_and_head(model)
    bias = getattr(head, "bias", None)
    transform = logit_transform(decoder.config)
    if isinstance(batch, PackedBatch):
        hidden = packed_hidden_states(decoder, batch, segment_attention)
        sums, counts = packed_sequence_logprobs(hidden, head.weight, batch, bias, chunk_size, transform)
    else:
        hidden = decoder(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
        )[0]
        sums, counts = sequence_logprobs(hidden, head.weight, batch.labels, bias, chunk_size, transform)
    size = batch.batch_size
    logps = {role: sums[i * size : (i + 1) * size] for i, role in enumerate(batch.roles)}
    tokens = {role: counts[i * size : (i + 1) * size] for i, role in enumerate(batch.roles)}
    return logps, tokens
