"""`python eval.py` end to end: tiny random model generates for 3 IFEval prompts; the results
folder is complete and valid; rescoring its saved generations needs no model and agrees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from ifpo.constraints import load_ifeval_jsonl
from ifpo.eval.rule_scoring import load_responses_jsonl, score_ifeval
from ifpo.eval.runner import evaluate
from tests.eval_harness.conftest import eval_config, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, ifeval_records) -> tuple[Path, Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("cli")
    data = write_jsonl(tmp / "three.jsonl", ifeval_records[:3])
    run_dir = tmp / "run"
    env = {**os.environ, "IFPO_ROOT": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "eval.py"),
            "+eval=ifeval",
            "model=tiny_llama",
            f"eval.data={data}",
            "eval.generation.max_new_tokens=8",
            "eval.generation.batch_size=2",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, run_dir, proc


def test_results_folder_contents(cli_run):
    data, run_dir, proc = cli_run
    lines = (run_dir / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    prompts = [json.loads(line)["prompt"] for line in data.read_text().splitlines()]
    assert sorted(r["prompt"] for r in records) == sorted(prompts)
    assert all(
        isinstance(r["response"], str)
        and len(r["follow_instruction_list_strict"]) == len(r["instruction_id_list"])
        for r in records
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"benchmark", "num_examples", "metrics", "per_kind", "skipped", "files"} <= set(summary)
    assert summary["benchmark"] == "ifeval" and summary["num_examples"] == 3
    assert set(summary["metrics"]) >= {
        "prompt_strict",
        "prompt_loose",
        "instruction_strict",
        "instruction_loose",
    }
    assert summary["metrics"]["num_instructions"] == sum(len(r["instruction_id_list"]) for r in records)
    assert set(summary["per_kind"]) == {k for r in records for k in r["instruction_id_list"]}
    png = run_dir / summary["files"]["chart"]
    assert png.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert "prompt_strict" in proc.stdout and "accuracy per constraint kind" in proc.stdout


def test_rescoring_saved_generations_loads_no_model_and_agrees(cli_run, tmp_path, monkeypatch):
    data, run_dir, _ = cli_run
    from ifpo.eval import runner

    def no_model(cfg):
        raise AssertionError("rescoring must not build a generator")

    monkeypatch.setattr(runner, "build_generator", no_model)
    cfg = eval_config(
        tmp_path, ["+eval=ifeval", f"eval.data={data}", f"eval.responses={run_dir / 'examples.jsonl'}"]
    )
    result = evaluate(cfg)
    first = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert result.metrics == first
    instructions, _ = load_ifeval_jsonl(data)
    direct = score_ifeval(instructions, load_responses_jsonl(run_dir / "examples.jsonl"))
    assert {k: result.metrics[k] for k in direct.summary()} == direct.summary()
