"""Session-scoped ``slurm_cluster`` fixture: one private SLURM cluster shared by all slurm tests.

Wire it into a conftest with ``from tests.conftest_slurm import slurm_cluster  # noqa: F401`` and
mark tests that use it with ``@pytest.mark.slurm``. A cluster that cannot be installed or started
FAILS the tests (a silent skip would hide a broken CI image); set ``IFPO_SKIP_SLURM=1`` to skip
them on purpose instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.slurm_cluster import SlurmCluster, SlurmError

SKIP_ENV = "IFPO_SKIP_SLURM"


def slurm_skip_reason() -> str | None:
    """Why SLURM tests are skipped on purpose, or None when they must run."""
    if os.environ.get(SKIP_ENV) == "1":
        return f"{SKIP_ENV}=1: SLURM cluster tests disabled on purpose"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A started single-node cluster (node idle); stopped and wiped after the session."""
    reason = slurm_skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster()
    try:
        cluster.start()
    except SlurmError as error:
        pytest.fail(
            f"could not bring up the SLURM test cluster (set {SKIP_ENV}=1 to skip SLURM tests): {error}",
            pytrace=False,
        )
    try:
        yield cluster
    finally:
        cluster.stop()
