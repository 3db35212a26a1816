"""A training callback: the policy's greedy answers to fixed held-out prompts, as a W&B table.

Every N steps (and at the end) the policy answers a few synthetic held-out prompts and each
answer is scored with the rule checkers (does it satisfy all of its constraints). It lives
with evaluation because it generates and scores; training only runs it (conf/callbacks names
it by `_target_`).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from ifpo.training.wandb_logging import wandb_loggers

SAMPLE_COLUMNS = ["step", "key", "prompt", "response", "follows_all"]


class SampleGenerationTable(pl.Callback):
    """Every `every_n_steps` steps (and at the end) log the policy's greedy answers to fixed held-out prompts.

    Only runs when a W&B logger is configured (generation costs time). All ranks generate, since
    sharded models need every rank in the forward; rank zero logs. The table accumulates rows of
    every logging step, so W&B shows how answers change over training.
    """

    def __init__(self, every_n_steps: int = 50, num_prompts: int = 4, max_new_tokens: int = 64, seed: int = 0,
                 key: str = "samples/generations") -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps, self.num_prompts, self.max_new_tokens = every_n_steps, num_prompts, max_new_tokens
        self.seed, self.key = seed, key
        self.rows: list[list[Any]] = []
        self._last_step = -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self.log_samples(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._last_step:
            self.log_samples(trainer, pl_module)

    def generate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[list[Any]]:
        """Rows (step, key, prompt, response, follows_all) for the current policy."""
        # lazy: the checkers and generator load only when a W&B logger makes this callback run
        from ifpo.eval.rule_scoring import score_example
        from ifpo.eval.synthetic_heldout import heldout_examples
        from ifpo.models.generation import GenerationSettings, HFGenerator

        tokenizer = getattr(getattr(trainer, "datamodule", None), "tokenizer", None)
        if tokenizer is None:
            from ifpo.models.loading import load_tokenizer

            tokenizer = load_tokenizer(pl_module.model_cfg)  # type: ignore[attr-defined]
        examples = heldout_examples(self.num_prompts, self.seed)
        settings = GenerationSettings(
            max_new_tokens=self.max_new_tokens, batch_size=self.num_prompts, show_progress=False
        )
        with torch.no_grad():
            texts = HFGenerator(pl_module.policy, tokenizer, settings).generate(
                [e.messages for e in examples]
            )  # type: ignore[attr-defined]
        rows = []
        for example, text in zip(examples, texts):
            strict, _ = score_example(example.instruction, text)
            rows.append(
                [
                    trainer.global_step,
                    example.key,
                    example.messages[-1]["content"],
                    text,
                    bool(strict.follow_all_instructions),
                ]
            )
        return rows

    def log_samples(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        targets = wandb_loggers(trainer.loggers)
        if not targets:
            return
        self._last_step = trainer.global_step
        self.rows.extend(self.generate(trainer, pl_module))
        if trainer.is_global_zero:
            for logger in targets:
                logger.log_table(
                    key=self.key,
                    columns=SAMPLE_COLUMNS,
                    data=[list(r) for r in self.rows],
                    step=trainer.global_step,
                )
