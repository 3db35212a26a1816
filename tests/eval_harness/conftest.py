"""Fixtures for the evaluation harness tests: shared IFEval data, composed eval configs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from omegaconf import DictConfig

from tests.hydra_helpers import compose_config

IFEVAL_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ifeval"
GPT4 = "input_response_data_gpt4_20231107_145030.jsonl"


@pytest.fixture(scope="session")
def ifeval_dir() -> Path:
    if not (IFEVAL_DIR / "input_data.jsonl").exists():
        pytest.skip(f"shared IFEval data not found under {IFEVAL_DIR}")
    return IFEVAL_DIR


@pytest.fixture(scope="session")
def ifeval_records(ifeval_dir: Path) -> list[dict]:
    lines = (ifeval_dir / "input_data.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_jsonl(path: Path, records: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def eval_config(tmp_path: Path, overrides: Sequence[str]) -> DictConfig:
    """The config `python eval.py <overrides>` would run with, writing into ``tmp_path``."""
    return compose_config("eval", ["eval.generation.show_progress=false", *overrides], output_dir=tmp_path)
