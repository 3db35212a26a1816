"""Loss formulas as plain tensor functions, shared by the heads and checked by hand in tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_preference_loss(logits: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """-(1-eps) log sigma(z) - eps log sigma(-z), per example (conservative DPO when eps > 0)."""
    return -(1.0 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


def hinge_preference_loss(scaled_delta: torch.Tensor) -> torch.Tensor:
    """max(0, 1 - beta * delta) (SLiC-style hinge)."""
    return torch.relu(1.0 - scaled_delta)


def ipo_loss(avg_delta: torch.Tensor, beta: float) -> torch.Tensor:
    """(delta_bar - 1/(2 beta))^2 with delta_bar from per-token-averaged log-ratios (IPO)."""
    return (avg_delta - 1.0 / (2.0 * beta)) ** 2


def per_token_nll(logps: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood of each sequence, from summed log-probs."""
    return -logps / tokens.clamp(min=1).to(logps.dtype)
