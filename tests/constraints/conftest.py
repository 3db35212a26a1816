from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def ifeval_input_path() -> Path:
    path = SHARED_DATA / "ifeval" / "input_data.jsonl"
    if not path.exists():
        pytest.skip(f"shared IFEval data not found at {path}")
    return path
