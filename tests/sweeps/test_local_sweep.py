"""A real tiny multirun (2 seeds x 2 steps, CSV + offline W&B): sweep summary, W&B run folders, the report."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from ifpo.report.__main__ import main as report_main
from ifpo.training.sweep_summary import SUMMARY_CSV, SUMMARY_JSON
from tests.sweeps import wandb_reader
from tests.sweeps.helpers import ROOT, TINY, run_train

SWEEP = [*TINY, "loss=dpo", "seed=1,2", "trainer.max_steps=2", "trainer.val_check_interval=2", "logger=many",
         "callbacks.sample_generations.every_n_steps=1", "callbacks.sample_generations.num_prompts=2",
         "callbacks.sample_generations.max_new_tokens=8"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, shared_data_dir):
    log_dir = tmp_path_factory.mktemp("sweep")
    done = run_train(
        [*SWEEP, f"paths.log_dir={log_dir}", f"data.synthetic.output_dir={shared_data_dir}/synthetic_sweep"],
        multirun=True,
        timeout=400,
        WANDB_DIR=str(log_dir),
        NETRC=str(log_dir / "no-netrc"),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sweep_dir,) = list((log_dir / "train" / "multiruns").iterdir())
    return sweep_dir, done.stdout + done.stderr


def test_each_job_has_its_own_folder_and_the_summary_lists_both(sweep):
    sweep_dir, output = sweep
    summary = json.loads((sweep_dir / SUMMARY_JSON).read_text())
    assert [j["job"] for j in summary["jobs"]] == ["0", "1"]
    assert [j["status"] for j in summary["jobs"]] == ["done", "done"]
    assert summary["optimized_metric"] == "val/rewards/accuracies"
    for job, seed in zip(summary["jobs"], (1, 2)):
        assert f"seed={seed}" in job["overrides"]
        saved = json.loads((sweep_dir / job["job"] / "metrics.json").read_text())["metrics"]
        assert job["metrics"] == pytest.approx(saved) and job["metrics"]["global_step"] == 2
    with open(sweep_dir / SUMMARY_CSV) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["job"] for r in rows] == ["0", "1"] and float(rows[1]["val/loss"]) == summary["jobs"][1][
        "metrics"
    ]["val/loss"]
    assert "seed=1" in output and "seed=2" in output and "sweep summary" in output


def test_offline_wandb_runs_hold_config_metrics_and_sample_table(sweep):
    sweep_dir, _ = sweep
    for job, seed in (("0", 1), ("1", 2)):
        (run,) = list((sweep_dir / job / "wandb").glob("offline-run-*"))  # offline: no login was found
        assert run.name.endswith((sweep_dir / job / "wandb_run_id.txt").read_text())
        (log_file,) = list(run.glob("*.wandb"))
        info = wandb_reader.run_info(log_file)
        assert info.run_group == f"train-{sweep_dir.name}" and info.job_type == "train"
        assert f"seed={seed}" in info.display_name and "paths." not in info.display_name
        saved = json.loads((sweep_dir / job / "metrics.json").read_text())["metrics"]
        history = wandb_reader.history(log_file)
        steps = sorted({int(r["trainer/global_step"]) for r in history if "train/loss" in r})
        assert steps == [0, 1]  # both optimizer steps (Lightning logs step index before increment)
        summary = wandb_reader.summary(log_file)
        assert summary["val/rewards/accuracies"] == pytest.approx(saved["val/rewards/accuracies"])
        assert summary["train/loss"] == pytest.approx(saved["train/loss"])
        assert summary["samples/generations/_type"] == "table-file"
        assert summary["samples/generations/nrows"] == 2 * 2  # 2 prompts x steps 1 and 2
        rows = json.loads((run / "files" / summary["samples/generations/path"]).read_text())
        assert rows["columns"] == ["step", "key", "prompt", "response", "follows_all"]
        assert sorted({r[0] for r in rows["data"]}) == [1, 2]
        config = wandb_reader.config(log_file)  # the whole resolved Hydra config, not only module hparams
        assert config["seed"] == seed and config["optimized_metric"] == "val/rewards/accuracies"
        assert config["data"]["synthetic"]["records"] == "dpo"  # records followed loss=dpo


def test_report_renders_from_the_sweep(sweep, capsys, monkeypatch):
    sweep_dir, _ = sweep
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(sweep_dir / "no-netrc"))
    assert report_main([str(sweep_dir)]) == 0
    printed = capsys.readouterr().out
    out = sweep_dir / "report"
    page = (out / "report.html").read_text()
    for png in ("loss.png", "reward_margins.png", "reward_accuracies.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png in page
    data = json.loads((out / "report.json").read_text())
    (group,) = data["groups"]  # the two seeds are one group
    assert len(data["groups"][group]) == 2
    acc = data["final"][group]["val/rewards/accuracies"]
    runs = [
        json.loads((sweep_dir / j / "metrics.json").read_text())["metrics"]["val/rewards/accuracies"]
        for j in "01"
    ]
    assert acc["n"] == 2 and acc["mean"] == pytest.approx(sum(runs) / 2)
    assert "wandb sync" in printed and "offline-run-" in printed


def test_report_cli_names_a_bad_metrics_file(tmp_path):
    run = tmp_path / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 1\nloss: {name: dpo}\n")
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "csv" / "version_0" / "metrics.csv").write_text("epoch,step,train/loss\n0,0,0.69\n0,1,oops\n")
    done = subprocess.run(
        [sys.executable, "-m", "ifpo.report", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert (
        f"{run / 'csv' / 'version_0' / 'metrics.csv'}:3: field 'train/loss': 'oops' is not a number"
        in done.stderr
    )
    assert "Traceback" not in done.stderr
