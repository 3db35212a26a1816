"""Weights & Biases for training runs: never prompts, groups sweeps, logs the config.

Lightning's WandbLogger does the logging; what is added here is the policy around it:
- (`prepare_wandb_env`, offline unless somebody is logged in, is in ifpo.config.wandb_env);
- `wandb_logger`: the factory conf/logger/wandb.yaml instantiates (group = the sweep's name in a
  multirun; the run id is kept in the run folder so a requeued job continues the same W&B run);
- `log_resolved_config`: the whole resolved Hydra config, not only the module's hyperparameters.

The sample-generation table callback lives with the evaluation code, in
:mod:`ifpo.eval.sample_table` (it generates and scores answers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from ifpo.config.plain import to_plain
from ifpo.config.wandb_env import prepare_wandb_env

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id.txt"
LOGGED_STEPS_FILE = "wandb_logged_steps.json"  # per metric, the last step this W&B run received


def sweep_group(default: str | None) -> str | None:
    """In a Hydra multirun, the sweep folder's name (one W&B group per sweep); otherwise `default`."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            return (
                f"{default}-{Path(HydraConfig.get().sweep.dir).name}"
                if default
                else Path(HydraConfig.get().sweep.dir).name
            )
    except Exception as error:  # noqa: BLE001  (no Hydra context: plain default)
        log.debug("no Hydra run context for the W&B group: %s", error)
    return default


def _job_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    except Exception:  # noqa: BLE001  (no Hydra context)
        return []


def wandb_logger(
    project: str = "ifpo",
    entity: str | None = None,
    group: str | None = None,
    name: str | None = None,
    job_type: str = "train",
    tags: Sequence[str] | None = None,
    save_dir: str = ".",
    id: str | None = None,
    log_model: bool = False,
    offline: bool = False,
) -> WandbLogger:
    """A Lightning WandbLogger that is offline without a login and continues its run after a requeue
    (same id from RUN_ID_FILE, replayed steps not sent twice)."""
    mode = prepare_wandb_env()
    id_file = Path(save_dir) / RUN_ID_FILE
    if id is None and id_file.is_file():
        id = id_file.read_text().strip() or None  # the same run folder: continue the same W&B run
    if id is None:
        from wandb.sdk.lib.runid import generate_id

        id = generate_id()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    id_file.write_text(id)
    if name is None:
        name = short_run_name(_job_overrides())
    return ContinuingWandbLogger(
        project=project,
        entity=entity,
        group=sweep_group(group),
        name=name or None,
        job_type=job_type,
        tags=list(tags or []),
        save_dir=save_dir,
        id=id,
        log_model=log_model,
        offline=offline or mode == "offline",
        resume="allow",
    )


class ContinuingWandbLogger(WandbLogger):
    """A WandbLogger that never sends a resumed run's replayed steps twice.

    After a kill, training continues from the last checkpoint, so the steps between it and the
    kill are computed and logged again; the W&B run (same id, `resume="allow"`) already holds
    them, and W&B history cannot be rewritten, so each would appear twice on the
    `trainer/global_step` axis. The last step sent per metric is kept in the run folder
    (LOGGED_STEPS_FILE, tied to the run id) and a metric is only sent for later steps.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._steps_file = Path(kwargs.get("save_dir") or ".") / LOGGED_STEPS_FILE
        self._run_id = str(kwargs.get("id"))
        self._sent: dict[str, int] = {}
        if self._steps_file.is_file():
            try:
                saved = json.loads(self._steps_file.read_text())
            except ValueError:
                saved = {}  # a kill mid-write: start a fresh record (a few steps may repeat)
            if isinstance(saved, dict) and saved.get("id") == self._run_id:
                self._sent = {k: int(v) for k, v in saved.get("last_step", {}).items()}

    @rank_zero_only
    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        if step is not None:
            metrics = {k: v for k, v in metrics.items() if step > self._sent.get(k, -1)}
            if not metrics:
                return  # every metric of this step is already in the run (replayed after a resume)
        super().log_metrics(metrics, step)
        if step is not None:
            self._sent.update(dict.fromkeys(metrics, int(step)))
            tmp = self._steps_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"id": self._run_id, "last_step": self._sent}))
            tmp.replace(self._steps_file)


def wandb_loggers(loggers: Sequence[Any]) -> list[WandbLogger]:
    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def log_resolved_config(loggers: Sequence[Any], cfg: DictConfig) -> None:
    """Send the whole resolved config to every W&B logger (Lightning only sends the module's hparams)."""
    targets = wandb_loggers(loggers)
    if targets:
        config = to_plain(cfg)
        for logger in targets:
            logger.log_hyperparams(config)  # rank zero only, inside Lightning


def finish_wandb(loggers: Sequence[Any], failed: bool = False) -> None:
    """Close this run's W&B runs: flushes the summary, and the next job of a multirun gets its own run
    (Lightning's WandbLogger would otherwise attach to the still-open run of the previous job)."""
    for logger in wandb_loggers(loggers):
        if logger._experiment is not None:  # never started (e.g. rank > 0): nothing to close
            logger.experiment.finish(exit_code=1 if failed else 0)


def log_final_summary(loggers: Sequence[Any], metrics: dict[str, float]) -> None:
    """The run's final metrics as the W&B summary (what the runs table and reports show per run)."""
    for logger in wandb_loggers(loggers):
        if logger._experiment is not None:
            logger.experiment.summary.update(metrics)


def short_run_name(overrides: Sequence[str], limit: int = 120) -> str | None:
    """The experiment-defining overrides of this job (file locations and plumbing left out)."""
    skip = ("paths.", "hydra.", "data.synthetic.output_dir", "callbacks.", "logger", "run_name")
    text = ",".join(o for o in overrides if not o.lstrip("+~").startswith(skip))
    return text[:limit] or None
