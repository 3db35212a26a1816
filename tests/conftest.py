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
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two xdist workers on two cores: torch's default (one thread per core in each
    # worker and in every train.py it spawns) would oversubscribe the cores and slow both by 10x.
    # Set before torch is imported (its thread pool reads this once); subprocesses inherit it.
    os.environ["OMP_NUM_THREADS"] = "1"

# The longest modules (measured with `make test ARGS=--durations=30`) start first, so the two
# workers finish together instead of one starting the 4-minute docs test last.
LONGEST_FIRST = (
    "tests/docs/test_docs_commands.py",
    "tests/study/test_smol_smoke.py",
    "tests/study/test_smoke.py",
    "tests/scale/test_zero3_preemption.py",
    "tests/scale/test_planner_measured.py",
)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its own hook renames the test ids)
def pytest_collection_modifyitems(config, items):
    """Under xdist (`--dist loadgroup`): one group per module, so module-scoped fixtures (a study's
    smoke run, a ZeRO-3 cluster) are built once, and one group for every test on the SLURM cluster
    (one cluster per session); the longest modules first."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: order kept within
    for item in items:
        group = "slurm" if item.get_closest_marker("slurm") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    """One generated-data folder for the whole session, so synthetic data is built once."""
    return tmp_path_factory.mktemp("data")

from tests.conftest_slurm import slurm_cluster  # noqa: F401  (session-scoped real SLURM cluster)
