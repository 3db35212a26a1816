"""A model-free sampler for synthetic tasks: the synthetic writer answers to random satisfaction vectors.

Lets every builder run end to end offline and fast; the builders still judge each answer
with the rule checkers, so nothing here is trusted blindly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ifpo.data import synthetic
from ifpo.sampling.base import SampleRequest, derive_seed


class SyntheticWriterSampler:
    """Each constraint of the request is met with probability ``satisfy_prob``."""

    def __init__(self, satisfy_prob: float = 0.5) -> None:
        if not 0.0 <= satisfy_prob <= 1.0:
            raise ValueError(f"sampler.satisfy_prob must be in [0, 1], got {satisfy_prob}")
        self.satisfy_prob = satisfy_prob

    def sample(self, requests: Sequence[SampleRequest], n: int, seed: int) -> list[list[str]]:
        out = []
        for request in requests:
            if "topic" not in request.context:
                raise ValueError(
                    f"sampler=synthetic needs synthetic instructions (builder.source=synthetic); "
                    f"{request.key!r} has no topic"
                )
            specs = [synthetic.Spec(c.kind, dict(c.kwargs)) for c in request.constraints]
            rng = random.Random(derive_seed(seed, request.key, [s.as_record() for s in specs]))
            answers = []
            for _ in range(n):
                vector = [rng.random() < self.satisfy_prob for _ in specs]
                try:
                    answers.append(synthetic.write_response(request.context["topic"], specs, vector, rng))
                except ValueError:  # a combination the writer cannot realise: answer plainly
                    answers.append(synthetic.write_response(request.context["topic"], [], [], rng))
            out.append(answers)
        return out
