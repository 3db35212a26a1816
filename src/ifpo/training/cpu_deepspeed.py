"""A test-only DeepSpeedStrategy that runs real ZeRO-3 on CPU processes over gloo.

Lightning's DeepSpeedStrategy refuses any accelerator but CUDA, although DeepSpeed itself
partitions, gathers and steps ZeRO-3 on CPU (its `cpu` accelerator, gloo backend). The
overrides below only remove Lightning's CUDA checks, so the tests exercise the same
partitioning, sharded checkpoints and export code paths as a GPU cluster.
"""

from __future__ import annotations

import os

import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy


class CPUDeepSpeedStrategy(DeepSpeedStrategy):
    """DeepSpeedStrategy on `accelerator=cpu` (gloo); never use for real training."""

    strategy_name = "deepspeed_cpu_test"

    def __init__(self, *args, **kwargs) -> None:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        kwargs.setdefault("process_group_backend", "gloo")
        super().__init__(*args, **kwargs)

    def setup_environment(self) -> None:
        DDPStrategy.setup_environment(self)  # skip DeepSpeedStrategy's CUDA-only check

    def setup_distributed(self) -> None:
        # DeepSpeedStrategy.setup_distributed minus the CUDA device-index validation.
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    @property
    def root_device(self) -> torch.device:
        return torch.device("cpu", self.local_rank)
