"""Shared fixtures and the xdist layout of `make test`; the SLURM cluster fixture is in conftest_slurm.py."""

import functools
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


def pytest_collection_modifyitems(config, items):
    """Under xdist, the longest modules first (each worker collects, the controller keeps this order:
    `--no-loadscope-reorder`)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable


@functools.cache
def _uses_slurm_cluster(path: str) -> bool:
    source = ROOT / path
    return source.suffix == ".py" and source.is_file() and "slurm_cluster" in source.read_text()


def xdist_scope(nodeid: str) -> str:
    """The scope a test runs in under `make test`: its module, or "slurm" for every module that uses
    the private SLURM cluster."""
    path = nodeid.split("::")[0]
    return "slurm" if _uses_slurm_cluster(path) else path


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadscope`, with every module that uses the private SLURM cluster in one scope.

    A scope (a module) runs on one worker, so module-scoped fixtures (a study's smoke run, a ZeRO-3
    cluster) are built once; the SLURM modules share a scope so one worker starts one cluster.
    (xdist's own `--dist loadgroup` cannot do this under pytest 9.2: it renames test ids through an
    attribute pytest no longer reads, and silently distributes test by test.)
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScopes(LoadScopeScheduling):
        """Scopes from `xdist_scope` (overriding `_split_scope` is how xdist's own
        LoadFileScheduling defines its scopes)."""

        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return ModuleScopes(config, log)


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    """One generated-data folder for the whole session, so synthetic data is built once."""
    return tmp_path_factory.mktemp("data")

from tests.conftest_slurm import slurm_cluster  # noqa: F401  (session-scoped real SLURM cluster)
