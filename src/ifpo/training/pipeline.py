"""Compose the pieces a config names and run training: the body of `train.py`."""

from __future__ import annotations

import logging
import signal
from typing import Any

import hydra
import lightning.pytorch as pl
from omegaconf import DictConfig

from ifpo.config.schema import validate_loss_config
from ifpo.config.wandb_env import prepare_wandb_env
from ifpo.data.datamodule import PreferenceDataModule
from ifpo.models.loading import load_tokenizer
from ifpo.training.batching import apply_global_batch_size
from ifpo.training.config_tree import print_config_tree
from ifpo.training.module import PreferenceModule
from ifpo.training.preemption import (
    Preempted,
    aborted_by_second_ctrl_c,
    describe_environment,
    own_the_resume_choice,
    trainer_plugins,
)
from ifpo.training.resume import resolve_ckpt_path
from ifpo.training.run_folder import RunFolder, RunFolderConflict, finished_metrics
from ifpo.training.strategy import build_strategy, require_cuda
from ifpo.training.wandb_logging import finish_wandb, log_final_summary, log_resolved_config

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a callbacks/logger group (null entries skipped)."""
    if not group:
        return []
    return [
        hydra.utils.instantiate(node) for node in group.values() if node is not None and "_target_" in node
    ]


def build(cfg: DictConfig) -> tuple[PreferenceModule, PreferenceDataModule, pl.Trainer]:
    """The module, data module and trainer a config describes (no training yet)."""
    require_cuda(cfg)  # a GPU experiment on a CPU machine stops here, before loading anything
    validate_loss_config(cfg.loss)  # unknown keys and out-of-range values, before any loading
    pl.seed_everything(cfg.seed, workers=True)
    tokenizer = load_tokenizer(cfg.model)
    module = PreferenceModule(cfg.model, cfg.ref, cfg.loss, cfg.optim, cfg.get("peft"))
    # the one loss head: its record kind and roles shape the batches the module receives
    datamodule = PreferenceDataModule(cfg.data, tokenizer, module.head)
    strategy = (
        {} if "strategy" in cfg.trainer or cfg.get("strategy") is None else {"strategy": build_strategy(cfg)}
    )
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=instantiate_group(cfg.get("logger")) or False,
        callbacks=instantiate_group(cfg.get("callbacks")),
        **preemption_kwargs(cfg.trainer),
        **strategy,
    )
    apply_global_batch_size(trainer, cfg.data.get("global_batch_size"), cfg.data.batch_size)
    own_the_resume_choice(trainer)  # Lightning must not pick hpc_ckpt_* on its own under SLURM
    if module.ref_cfg["mode"] == "precomputed" and module.head.needs_reference:
        from ifpo.training.reference_cache import precomputed_reference

        # reference log-probs from the disk cache (computing it needs a one-device run), joined to
        # the data as new sets and a new collator: a new datamodule, the first one left unchanged
        reference = precomputed_reference(cfg, datamodule.splits(), module, world_size=trainer.world_size)
        datamodule = datamodule.with_transform(reference)
    return module, datamodule, trainer


def train(cfg: DictConfig) -> dict[str, float]:
    """Train as configured; return the final metrics (what sweepers optimise).

    `plan=true` never reaches here: train.py goes through ifpo.scale.plan_cli.plan_or_train.
    """
    require_cuda(cfg)  # before anything is printed, loaded or downloaded
    resume = cfg.get("resume", "auto")
    folder = RunFolder(cfg.paths.output_dir, checkpoint_dir(cfg))
    try:
        state = folder.check(cfg, resume)  # before anything in the folder is written
    except RunFolderConflict as conflict:
        log.error("%s", conflict.message)
        raise
    if state == "finished":
        log.warning(
            "run folder %s is finished (metrics.json); nothing to do. Train further with resume=force "
            "(e.g. a larger trainer.max_steps) or start a new run with another run_name",
            folder.run_dir,
        )
        return finished_metrics(folder.run_dir)
    print_config_tree(cfg, cfg.paths.output_dir)
    prepare_wandb_env()
    module, datamodule, trainer = build(cfg)
    log_resolved_config(trainer.loggers, cfg)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), resume, cfg.paths.output_dir, checkpoint_dir(cfg))
    log.info(describe_environment((cfg.get("preemption") or {}).get("signal_lead_s")))
    finished = False
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        finished = True
    except Preempted as stop:
        # The agreed checkpoint is written; a non-zero exit tells SLURM/shells this run is unfinished.
        log.warning(
            "stopped by %s at step %d; rerun the same command to resume",
            signal_name(stop.signum),
            trainer.global_step,
        )
        raise SystemExit(stop.code) from None
    except SystemExit:
        if aborted_by_second_ctrl_c(trainer):  # aborted at once, no checkpoint: what a shell reports
            log.warning("aborted by a second Ctrl-C at step %d; no checkpoint written", trainer.global_step)
            raise SystemExit(128 + signal.SIGINT) from None
        raise
    finally:
        if finished:
            log_final_summary(trainer.loggers, final_metrics(trainer))
            if trainer.is_global_zero:
                folder.mark_finished(trainer.global_step)
        finish_wandb(trainer.loggers, failed=not finished)
    export_at_end(cfg, module, datamodule)
    return final_metrics(trainer)


def export_at_end(cfg: DictConfig, module: PreferenceModule, datamodule: PreferenceDataModule) -> None:
    """export.at_end=true: the trained policy as a Hugging Face folder (every rank joins the gather)."""
    export = cfg.get("export") or {}
    if not export.get("at_end", False):
        return
    from ifpo.models.export import export_hf

    out = export_hf(module.policy, str(export.dir), datamodule.tokenizer, module.peft_cfg)
    if out is not None:
        log.info("exported the trained policy to %s (from_pretrained loads it)", out)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def final_metrics(trainer: pl.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def checkpoint_dir(cfg: DictConfig) -> str | None:
    """Where ModelCheckpoint writes last.ckpt (null when checkpointing is switched off)."""
    callbacks = cfg.get("callbacks") or {}
    for name in ("resume_checkpoint", "model_checkpoint"):
        node = callbacks.get(name)
        if node is not None and node.get("dirpath"):
            return str(node.dirpath)
    return None


def preemption_kwargs(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Under SLURM: Lightning's requeue handler on SIGUSR2 (see ifpo.training.preemption)."""
    plugins = trainer_plugins()
    if not plugins or trainer_cfg.get("plugins"):
        return {}  # not on SLURM, or the config chose its own plugins
    return {"plugins": plugins}
