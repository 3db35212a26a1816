"""A W&B run continued after a kill gets the same run id and each step once (issue 15, item 1)."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from ifpo.training.wandb_logging import LOGGED_STEPS_FILE, ContinuingWandbLogger, finish_wandb, wandb_logger
from tests.sweeps import wandb_reader


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def _spy(logger, sent):
    """Record every dict the logger hands to the real W&B run (which still receives it)."""
    run = logger.experiment
    real_log = run.log

    def log(data, *args, **kwargs):
        sent.append(dict(data))
        return real_log(data, *args, **kwargs)

    run.log = log
    return run


def _process(tmp_path, train_steps, val_steps, sent):
    logger = wandb_logger(project="ifpo-test", save_dir=str(tmp_path), name="resume-test")
    assert isinstance(logger, ContinuingWandbLogger)
    run = _spy(logger, sent)
    for step in train_steps:
        logger.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
        if step in val_steps:
            logger.log_metrics({"val/loss": 2.0 / (step + 1)}, step=step)
    finish_wandb([logger])
    return run.id


def test_resumed_wandb_run_keeps_its_id_and_sends_no_step_twice(tmp_path):
    sent: list[dict] = []
    first_id = _process(tmp_path, range(6), {3}, sent)  # killed after step 5; checkpoint was at step 2
    time.sleep(1.1)  # W&B names offline run folders by the second; a real restart is never that quick
    second_id = _process(tmp_path, range(3, 8), {3, 7}, sent)  # resumed: steps 3..5 are replayed
    assert second_id == first_id
    assert (tmp_path / LOGGED_STEPS_FILE).is_file()
    steps: dict[str, list[int]] = defaultdict(list)
    for row in sent:
        for key in row:
            if key != "trainer/global_step":
                steps[key].append(row["trainer/global_step"])
    assert steps["train/loss"] == list(range(8))
    assert steps["val/loss"] == [3, 7]
    # What W&B itself recorded: one offline run file per process, same id, each step once overall.
    files = sorted(tmp_path.glob(f"wandb/offline-run-*-{first_id}/run-{first_id}.wandb"))
    assert len(files) == 2
    deadline = time.monotonic() + 30  # wandb-core may still be writing the last records after finish()
    while True:
        logged = sorted(row["trainer/global_step"] for path in files for row in wandb_reader.history(path)
                        if "train/loss" in row)
        if len(logged) >= 8 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert logged == list(range(8))


def test_a_new_run_id_in_the_same_folder_starts_a_fresh_record(tmp_path):
    sent: list[dict] = []
    _process(tmp_path, range(4), set(), sent)
    (tmp_path / "wandb_run_id.txt").unlink()  # a new W&B run for this folder
    sent.clear()
    _process(tmp_path, range(2), set(), sent)
    assert [row["trainer/global_step"] for row in sent] == [0, 1]
