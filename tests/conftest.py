"""Shared fixtures. The SLURM cluster fixture lives in conftest_slurm.py."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("IFPO_ROOT", str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    """One generated-data folder for the whole session, so synthetic data is built once."""
    return tmp_path_factory.mktemp("data")

from tests.conftest_slurm import slurm_cluster  # noqa: F401  (session-scoped real SLURM cluster)
