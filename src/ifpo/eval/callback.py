"""Lightning callback: rule-scored synthetic held-out evaluation during training.

Every ``every_n_steps`` optimizer steps (and once at the end) the current policy
generates greedy answers for a small fixed subset of held-out tasks; the accuracies
(prompt/instruction, strict/loose, strict per constraint kind) go to every logger at the
current step and into ``trainer.callback_metrics`` (so checkpointing can monitor them and
the final summary shows them). The log-prob validation loop says whether the preference
margin grows; this says whether the model actually follows constraints when it writes.

Under sharded strategies every rank must run the forward passes, so all ranks generate
the same subset; only rank zero writes to the loggers.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch

from ifpo.eval.synthetic_heldout import evaluate_heldout, heldout_metrics
from ifpo.models.generation import GenerationSettings, HFGenerator

log = logging.getLogger(__name__)


class HeldoutEvalCallback(pl.Callback):
    """Generate on ``num_examples`` held-out tasks every ``every_n_steps`` steps and at the end of
    training."""

    def __init__(
        self,
        every_n_steps: int = 50,
        num_examples: int = 16,
        max_new_tokens: int = 128,
        batch_size: int = 8,
        seed: int = 0,
        at_end: bool = True,
        prefix: str = "heldout",
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.num_examples = num_examples
        self.settings = GenerationSettings(
            max_new_tokens=max_new_tokens, batch_size=batch_size, show_progress=False
        )
        self.seed = seed
        self.at_end = at_end
        self.prefix = prefix
        self.last_step: int | None = None
        self.history: list[tuple[int, dict[str, float]]] = []  # (step, metrics), for inspection and tests

    def _tokenizer(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Any:
        datamodule = getattr(trainer, "datamodule", None)
        tokenizer = getattr(datamodule, "tokenizer", None)
        if tokenizer is None:
            from ifpo.models.loading import load_tokenizer

            tokenizer = load_tokenizer(pl_module.model_cfg)  # type: ignore[attr-defined]
        return tokenizer

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Evaluate now and log at ``trainer.global_step``; returns the metrics."""
        step = trainer.global_step
        policy = pl_module.policy  # type: ignore[attr-defined]
        generator = HFGenerator(policy, self._tokenizer(trainer, pl_module), self.settings)
        with torch.no_grad():
            _, _, report = evaluate_heldout(generator, self.num_examples, self.seed)
        metrics = heldout_metrics(report, self.prefix)
        self.last_step = step
        self.history.append((step, metrics))
        for name, value in metrics.items():
            trainer.callback_metrics[name] = torch.tensor(value)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
            log.info(
                "step %d: %s prompt_strict=%.3f instruction_strict=%.3f",
                step,
                self.prefix,
                report.prompt_strict,
                report.instruction_strict,
            )
        return metrics

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        # global_step counts optimizer steps, so under gradient accumulation it repeats across micro-batches.
        if step > 0 and step % self.every_n_steps == 0 and step != self.last_step:
            self.run(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.at_end and trainer.global_step != self.last_step:
            self.run(trainer, pl_module)
