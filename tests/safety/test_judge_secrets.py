"""A secret typed as a config override is refused before Hydra writes it anywhere (issue 15, item 8)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ifpo.config.secrets import SecretOnCommandLineError, refuse_secret_overrides, secret_overrides
from ifpo.judge import JudgeConfig
from tests.hydra_helpers import ROOT

SECRET = "sk-DO-NOT-SAVE-31337"


@pytest.mark.parametrize(
    "argv,entry",
    [
        (["builder=rpo", "sampler=synthetic", "judge=openai", f"+judge.api_key={SECRET}"], "build.py"),
        (["+eval=synthetic", f"+eval.judge.api_key={SECRET}"], "eval.py"),
        (["-m", "seed=1,2", f"+logger.wandb.api_key={SECRET}"], "train.py"),
    ],
)
def test_secret_override_stops_before_any_file_is_written(tmp_path, argv, entry):
    done = subprocess.run(
        [sys.executable, entry, *argv, f"paths.log_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refusing a secret on the command line" in done.stderr
    assert "api_key" in done.stderr and "environment" in done.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []  # no .hydra/config.yaml, overrides.yaml or log holding the key
    assert SECRET not in done.stdout + done.stderr


def test_the_judge_message_names_its_environment_variable():
    with pytest.raises(SecretOnCommandLineError, match="OPENAI_API_KEY"):
        refuse_secret_overrides(["judge=openai", "+judge.api_key=x"])


def test_only_secret_names_are_matched():
    overrides = [
        "+judge.api_key=x",
        "judge.api_key_env=MY_KEY",
        "+hf.token=y",
        "model.tokenizer=z",
        "eval.generation.max_new_tokens=8",
        "+db.password=p",
        "+x.client_secret=s",
        "data.pad_token=q",
    ]
    assert secret_overrides(overrides) == ["+judge.api_key", "+hf.token", "+db.password", "+x.client_secret"]


def test_judge_config_from_a_node_refuses_unknown_keys():
    with pytest.raises(
        ValueError, match=r"judge has no option judge.api_key \(put the key itself in the environment"
    ):
        JudgeConfig.from_mapping({"model": "m", "api_key": "sk-1"})
    assert JudgeConfig.from_mapping({"model": "m", "timeout_s": 3}).timeout_s == 3
