from pathlib import Path

import pytest

IFEVAL_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ifeval"


@pytest.fixture(scope="session")
def ifeval_dir() -> Path:
    if not (IFEVAL_DIR / "input_data.jsonl").exists():
        pytest.skip(f"shared IFEval data not found under {IFEVAL_DIR}")
    return IFEVAL_DIR
