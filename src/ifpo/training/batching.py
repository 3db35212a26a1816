"""`data.global_batch_size`: examples per optimizer step, whatever the cluster shape.

With a fixed global batch the learning rate and schedule of a paper setup stay valid when the
job runs on a different number of nodes or GPUs: gradient accumulation absorbs the difference.
Shapes that cannot reach the global batch exactly are refused with the numbers, never rounded.
"""

from __future__ import annotations

import logging

import lightning.pytorch as pl

log = logging.getLogger(__name__)


def accumulation_steps(global_batch: int, micro_batch: int, nodes: int, devices: int) -> int:
    """Micro-batches each rank accumulates so that nodes x devices x micro_batch x steps == global_batch."""
    per_pass = nodes * devices * micro_batch
    if global_batch < 1 or micro_batch < 1:
        raise ValueError(
            f"data.global_batch_size ({global_batch}) and data.batch_size ({micro_batch}) must be >= 1"
        )
    if global_batch % per_pass:
        raise ValueError(
            f"data.global_batch_size={global_batch} examples per optimizer step is not a multiple of "
            f"trainer.num_nodes={nodes} x devices per node={devices} x data.batch_size={micro_batch} = "
            f"{per_pass} examples per forward pass; pick a global batch divisible by {per_pass}, or a "
            f"cluster shape / micro-batch whose product divides {global_batch}"
        )
    return global_batch // per_pass


def apply_global_batch_size(trainer: pl.Trainer, global_batch: int | None, micro_batch: int) -> None:
    """Set trainer.accumulate_grad_batches from data.global_batch_size (null: leave the trainer's value)."""
    if global_batch is None:
        return
    steps = accumulation_steps(int(global_batch), int(micro_batch), trainer.num_nodes, trainer.num_devices)
    log.info(
        "global batch %d = %d node(s) x %d device(s) x micro-batch %d x accumulation %d",
        global_batch, trainer.num_nodes, trainer.num_devices, micro_batch, steps,
    )  # fmt: skip
    trainer.accumulate_grad_batches = steps
