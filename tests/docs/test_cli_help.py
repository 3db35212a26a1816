"""--help of the entry points and module CLIs: only what applies, every argument described with its
default."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ifpo.importers.__main__ import build_parser as importers_parser
from ifpo.scale.planner import build_parser as planner_parser

ROOT = Path(__file__).resolve().parents[2]


def _help(script: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, script, "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_train_help_lists_only_training_groups():
    text = _help("train.py")
    groups = {
        line.split()[0] for line in text.splitlines() if line.startswith("  ") and not line.startswith("   ")
    }
    assert {
        "model",
        "ref",
        "data",
        "loss",
        "optim",
        "strategy",
        "peft",
        "trainer",
        "logger",
        "callbacks",
        "experiment",
        "hparams_search",
        "debug",
    } <= groups
    for other in ("builder", "sampler", "judge", "eval"):  # build.py / eval.py groups
        assert other not in groups, other
    assert "_schema" not in text and "_llama_8b" not in text  # validation nodes and shared bases hidden
    assert "[tiny_llama]" in text and "early_stopping" in text and "tensorboard" in text
    assert "-sc install=bash" in text and "--cfg job" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_eval_help_names_the_required_benchmark_group():
    text = _help("eval.py")
    assert "+eval=NAME" in text and "ifeval" in text and "loss" not in text.split("Top-level keys")[0]


@pytest.mark.parametrize("parser", [importers_parser(), planner_parser()], ids=["importers", "planner"])
def test_module_cli_describes_every_argument_with_its_default(parser: argparse.ArgumentParser):
    for action in parser._actions:
        assert action.help, f"{action.dest} has no help"
    options = parser.format_help().split("options:", 1)[1]
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            entry = options.split(f"\n  {action.option_strings[-1]}", 1)[1].split("\n  -", 1)[0]
            assert "(default:" in entry, action.dest
