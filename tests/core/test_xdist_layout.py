"""`make test` runs two xdist workers; modules stay whole and the SLURM modules share one worker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import LONGEST_FIRST, xdist_scope

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_using_the_slurm_cluster_is_in_one_scope():
    modules = (ROOT / "tests").rglob("test_*.py")
    slurm_modules = [str(p.relative_to(ROOT)) for p in modules if "slurm_cluster" in p.read_text()]
    assert len(slurm_modules) >= 3  # scripts, requeue, the submitit launcher
    assert {xdist_scope(f"{m}::test_x") for m in slurm_modules} == {"slurm"}
    assert xdist_scope("tests/core/test_losses.py::test_x[a-b]") == "tests/core/test_losses.py"


def test_longest_first_names_existing_modules():
    assert all((ROOT / path).is_file() for path in LONGEST_FIRST)


def test_make_test_keeps_a_module_on_one_worker():
    """The Makefile's xdist options, run for real: every test of a module reports the same worker."""
    make = (ROOT / "Makefile").read_text()
    line = re.search(r"^XDIST := (.*)$", make, re.MULTILINE).group(1)
    options = line.replace("$(TEST_WORKERS)", "2").split()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *options, "-p", "no:cacheprovider", "-v",
         "tests/core/test_architecture.py", "tests/core/test_batches.py"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    workers: dict[str, set[str]] = {}
    for worker, module in re.findall(r"^\[(gw\d+)\] .*?PASSED (tests/\S+?\.py)::", proc.stdout, re.MULTILINE):
        workers.setdefault(module, set()).add(worker)
    assert set(workers) == {"tests/core/test_architecture.py", "tests/core/test_batches.py"}
    assert all(len(w) == 1 for w in workers.values()), workers
