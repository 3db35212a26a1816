"""Per-token log-probabilities through the LM head without materialising full logits.

A naive `log_softmax(lm_head(hidden))` over a batch of long sequences at a 128k
vocabulary needs tens of GB of float32 logits. We instead (1) apply the LM head only
at response positions (prompt positions never need logits), and (2) process those
positions in chunks inside a custom autograd function that recomputes each chunk's
logits in backward, so the extra memory is about one chunk by the vocabulary, in the
spirit of Liger-Kernel's chunked losses. Written by hand because neither transformers
nor Lightning ships a chunked *log-prob gather*: Liger's `chunked_loss` (plain torch plus
`torch.compile`, no Triton) fuses each preference loss into its own autograd function and
returns the reduced loss, not the per-role log-probs our pluggable heads take.

Models that post-process their logits (Cohere's `logit_scale`, Granite's `logits_scaling`,
Gemma-2's `final_logit_softcapping`) get the same transform here (`LogitTransform`), read
from the model config, so the log-probs are those of the model's own `forward`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class LogitTransform:
    """logits = softcap * tanh(scale * (h W^T + b) / softcap) (no tanh when softcap is None)."""

    scale: float = 1.0
    softcap: float | None = None

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.softcap is None

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def backward(self, grad: torch.Tensor, capped: torch.Tensor) -> torch.Tensor:
        """d loss / d raw logits from d loss / d transformed logits (in place); `capped` = apply(raw)."""
        if self.softcap is not None:  # d/dz c*tanh(z/c) = 1 - tanh^2 = 1 - (capped / c)^2
            grad.mul_(1 - (capped / self.softcap) ** 2)
        if self.scale != 1.0:
            grad.mul_(self.scale)
        return grad


#: config field -> how it enters the transform (the fields transformers' LM heads read).
LOGIT_FIELDS = ("logit_scale", "logits_scaling", "final_logit_softcapping")


def logit_transform(config: Any) -> LogitTransform:
    """The LM-head post-processing of a transformers config (Cohere, Granite, Gemma-2 and kin)."""
    scale = 1.0
    if getattr(config, "logit_scale", None) is not None:  # Cohere: logits * logit_scale
        scale *= float(config.logit_scale)
    if getattr(config, "logits_scaling", None) is not None:  # Granite: logits / logits_scaling
        scale /= float(config.logits_scaling)
    softcap = getattr(config, "final_logit_softcapping", None)  # Gemma-2/3: c * tanh(logits / c)
    return LogitTransform(scale, float(softcap) if softcap else None)


IDENTITY = LogitTransform()


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """float32 for half-precision models (as TRL does), float64 kept for gradient checks."""
    return torch.promote_types(hidden.dtype, torch.float32)


class _ChunkedLinearLogProbs(torch.autograd.Function):
    """log softmax(h @ W^T + b)[target] per row, chunk by chunk, recomputing in backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_size: int, transform: LogitTransform):  # type: ignore[override]
        compute_dtype = _compute_dtype(hidden)
        out = torch.empty(hidden.shape[0], dtype=compute_dtype, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_size):
            stop = start + chunk_size
            logits = transform.apply(
                torch.nn.functional.linear(hidden[start:stop], weight, bias).to(compute_dtype)
            )
            out[start:stop] = logits.gather(-1, targets[start:stop, None]).squeeze(-1) - logits.logsumexp(-1)
            del logits
        ctx.save_for_backward(hidden, weight, bias, targets)
        ctx.chunk_size = chunk_size
        ctx.transform = transform
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        hidden, weight, bias, targets = ctx.saved_tensors
        chunk_size, transform = ctx.chunk_size, ctx.transform
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        compute_dtype = _compute_dtype(hidden)
        grad_hidden = torch.zeros_like(hidden) if need_h else None
        grad_weight = torch.zeros(weight.shape, dtype=compute_dtype, device=weight.device) if need_w else None
        grad_bias = (
            torch.zeros(bias.shape, dtype=compute_dtype, device=bias.device)
            if (need_b and bias is not None)
            else None
        )
        for start in range(0, hidden.shape[0], chunk_size):
            stop = start + chunk_size
            h = hidden[start:stop]
            logits = transform.apply(torch.nn.functional.linear(h, weight, bias).to(compute_dtype))
            # d logp[t] / d logits = onehot(t) - softmax(logits), scaled by the upstream grad.
            grad_logits = torch.softmax(logits, dim=-1).neg_()
            grad_logits.scatter_add_(
                -1,
                targets[start:stop, None],
                torch.ones_like(targets[start:stop, None], dtype=grad_logits.dtype),
            )
            grad_logits.mul_(grad_out[start:stop, None].to(compute_dtype))
            if not transform.identity:
                grad_logits = transform.backward(grad_logits, logits)
            del logits
            if grad_hidden is not None:
                grad_hidden[start:stop] = (grad_logits.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.t(), h.to(compute_dtype))
            if grad_bias is not None:
                grad_bias.add_(grad_logits.sum(0))
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        if grad_bias is not None:
            grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None


def chunked_token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    chunk_size: int = 1024,
    transform: LogitTransform = IDENTITY,
) -> torch.Tensor:
    """float32 log p(target | hidden) for each row of `hidden` [N, H]; memory ~ chunk x vocab."""
    if hidden.shape[0] == 0:
        # Keep the graph connected so backward still reaches the weight (with zero grad).
        return (hidden.sum() * 0).to(_compute_dtype(hidden)).expand(0)
    return _ChunkedLinearLogProbs.apply(hidden, weight, bias, targets, max(1, int(chunk_size)), transform)


def naive_token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    transform: LogitTransform = IDENTITY,
) -> torch.Tensor:
    """Reference implementation: full float32 logits, then log_softmax (for tests and benchmarks)."""
    logits = transform.apply(torch.nn.functional.linear(hidden, weight, bias).float())
    return torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)


def sequence_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    bias: torch.Tensor | None = None,
    chunk_size: int = 1024,
    transform: LogitTransform = IDENTITY,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs and token counts per sequence.

    `hidden` is [S, T, H] (the decoder's last hidden state), `labels` is [S, T] with the
    token at each position and -100 where no loss applies (prompt, padding). Position t
    predicts labels[t + 1], the usual causal shift.
    """
    shifted = labels[:, 1:]
    mask = shifted != -100
    rows, cols = mask.nonzero(as_tuple=True)
    token_logps = chunked_token_logprobs(
        hidden[rows, cols], weight, shifted[rows, cols], bias, chunk_size, transform
    )
    sums = torch.zeros(labels.shape[0], dtype=token_logps.dtype, device=hidden.device)
    sums = sums.index_add(0, rows, token_logps)
    counts = mask.sum(-1)
    return sums, counts
