"""`logger=tensorboard` writes readable event files; `callbacks=early_stopping` stops a run early."""

import json

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ifpo.training.pipeline import train
from tests.hydra_helpers import compose_config


def test_tensorboard_logger_and_early_stopping(tmp_path, shared_data_dir):
    overrides = [
        "debug=fast",
        "logger=tensorboard",
        "callbacks=early_stopping",
        "data.batch_size=2",
        "data.eval_batch_size=4",
        "trainer.max_steps=12",
        "trainer.val_check_interval=1",
        # An improvement of 10 in an accuracy is impossible: the second validation stops the run.
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=10",
    ]
    cfg = compose_config("train", overrides, output_dir=tmp_path, data_dir=shared_data_dir)
    train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"]["global_step"] == 2  # not 12

    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"val/rewards/accuracies", "train/loss"} <= tags and "hp_metric" not in tags
    assert [e.step for e in acc.Scalars("val/rewards/accuracies")] == [0, 1]  # Lightning logs val at step-1
