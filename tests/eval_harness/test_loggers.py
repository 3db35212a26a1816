"""Results reach configured loggers: W&B (offline, never prompting) gets the summary and tables; CSV the
metrics."""

from __future__ import annotations

import csv
import json
import os

import wandb

from ifpo.config.wandb_env import prepare_wandb_env
from ifpo.eval.runner import evaluate
from tests.eval_harness.conftest import eval_config, write_jsonl

RECORD = {"key": 1, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}


def _inputs(tmp_path):
    data = write_jsonl(tmp_path / "bench.jsonl", [RECORD, {**RECORD, "key": 2, "prompt": "Again."}])
    responses = write_jsonl(
        tmp_path / "r.jsonl",
        [{"prompt": "Say hi.", "response": "hi"}, {"prompt": "Again.", "response": "hi, again"}],
    )
    return [f"eval.data={data}", f"eval.responses={responses}", "eval.chart=false", "+eval=ifeval"]


def test_no_key_means_offline_wandb(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", os.devnull)  # no `wandb login` entry either
    monkeypatch.delenv("WANDB_MODE", raising=False)
    prepare_wandb_env()
    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    prepare_wandb_env()
    assert os.environ["WANDB_MODE"] == "disabled"  # an explicit choice is kept


def test_wandb_offline_run_folder_has_the_summary(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    save_dir = tmp_path / "wandb_logs"
    cfg = eval_config(
        tmp_path / "run",
        [
            *_inputs(tmp_path),
            "+logger.wandb._target_=lightning.pytorch.loggers.WandbLogger",
            f"+logger.wandb.save_dir={save_dir}",
            "+logger.wandb.project=ifpo-eval-test",
        ],
    )
    result = evaluate(cfg)
    runs = list(save_dir.glob("wandb/offline-run-*"))
    assert len(runs) == 1
    run = runs[0]
    summary = json.loads((run / "files" / "summary.json").read_text())
    assert summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metrics"]["prompt_strict"] == result.metrics["prompt_strict"] == 0.5
    (table,) = run.glob("files/media/table/ifeval/examples_*.table.json")
    rows = json.loads(table.read_text())
    assert len(rows["data"]) == 2 and "follow_instruction_list_strict" in rows["columns"]
    # The run log (protobuf) carries the W&B summary keys and values. wandb-core writes it
    # asynchronously after `finish()` returns; the process's exit waits for that through wandb's
    # teardown, so the file is read as it is after exit (without it the read raced the writer
    # whenever earlier tests in the process had left threads running).
    wandb.teardown()
    log = next(run.glob("run-*.wandb")).read_bytes()
    assert b"ifeval/prompt_strict" in log and b"ifeval/kind/punctuation:no_comma/strict" in log


def test_csv_logger_gets_the_flat_metrics(tmp_path):
    cfg = eval_config(tmp_path / "run", [*_inputs(tmp_path), "logger=csv"])
    result = evaluate(cfg)
    with open(tmp_path / "run" / "csv" / "version_0" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[0]["ifeval/instruction_strict"]) == result.metrics["instruction_strict"] == 0.5
