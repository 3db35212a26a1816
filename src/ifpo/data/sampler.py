"""The data order of a run, resumable mid-epoch: a seeded sharded sampler and a loader with state.

Lightning saves the loader's `state_dict` in every checkpoint; a resumed run rebuilds the same
permutation from (seed, epoch) and skips exactly the batches the interrupted one trained on.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler


def global_seed(default: int = 0) -> int:
    """The seed `lightning.seed_everything` set for this run (it exports PL_GLOBAL_SEED)."""
    return int(os.environ.get("PL_GLOBAL_SEED", default))


class ResumableSampler(DistributedSampler):
    """A seeded per-epoch permutation (epoch e uses seed + e), sharded over ranks, that can start mid-epoch.

    It is a DistributedSampler so Lightning keeps it under DDP instead of wrapping it; the
    permutation depends only on (seed, epoch), so a restarted process rebuilds the same order.
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.skip = 0  # indices of this rank's shard to leave out at the start of the next pass

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


class ResumableDataLoader(DataLoader):
    """A DataLoader with `state_dict`/`load_state_dict`, which Lightning saves in every checkpoint.

    The state is (epoch, batches handed out this epoch). Counting happens where batches leave the
    loader, not in the sampler, because worker prefetching runs the sampler ahead of training.
    A resumed run skips exactly the batches the interrupted one trained on.
    """

    sampler: ResumableSampler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, ResumableSampler):
            raise TypeError(
                f"ResumableDataLoader needs a ResumableSampler, got {type(self.sampler).__name__}"
            )
        self._batches_this_epoch = 0
        self._pending: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # A generator: the body runs at the first next(), after Lightning's set_epoch for this epoch.
        pending, self._pending = self._pending, None
        self._batches_this_epoch = 0
        if pending is not None and pending["epoch"] == self.sampler.epoch:
            self._batches_this_epoch = pending["batches"]
            self.sampler.skip = pending["batches"] * int(self.batch_size or 1)
        for batch in super().__iter__():
            self._batches_this_epoch += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": int(self.sampler.epoch),
            "batches": self._batches_this_epoch,
            "seed": int(self.sampler.seed),
            "num_replicas": int(self.sampler.num_replicas),
            "batch_size": int(self.batch_size or 1),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        mine = self.state_dict()
        changed = [k for k in ("seed", "num_replicas", "batch_size") if k in state and state[k] != mine[k]]
        if changed:
            warnings.warn(
                f"resuming with different {', '.join(f'{k} ({state[k]} -> {mine[k]})' for k in changed)}: "
                "the resumed data order only approximates the interrupted run's",
                stacklevel=2,
            )
        self._pending = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}
