"""The preference LightningModule: a trainable policy, a frozen reference, a pluggable head.

One concatenated policy forward covers every sequence of a batch (2B rows for pairs, 4B
for quads); the reference runs once under no_grad. Per-sequence log-probs are computed
with the chunked LM-head path, so full-vocabulary float32 logits never exist.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from torchmetrics import MeanMetric
from transformers import get_scheduler

from ifpo.config.plain import to_plain
from ifpo.losses import LossHead, SequenceLogps, get_loss_head
from ifpo.models.batch import Batch
from ifpo.models.forward import role_logps
from ifpo.models.loading import build_causal_lm, freeze
from ifpo.models.lora import apply_lora, peft_enabled
from ifpo.models.reference import build_reference_copy
from ifpo.training.strategy import hf_zero3_context, is_zero3, optimizer_class

REFERENCE_PREFIX = "reference."


class PreferenceModule(pl.LightningModule):
    def __init__(self, model: Any, ref: Any, loss: Any, optim: Any, peft: Any = None) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "model": to_plain(model),
                "ref": to_plain(ref),
                "loss": to_plain(loss),
                "optim": to_plain(optim),
                "peft": to_plain(peft),
            }
        )
        self.model_cfg, self.ref_cfg = self.hparams["model"], self.hparams["ref"]
        self.peft_cfg = self.hparams["peft"]
        if self.ref_cfg["mode"] == "adapter" and not peft_enabled(self.peft_cfg):
            raise ValueError(
                "ref.mode=adapter uses the policy with its LoRA adapters disabled: it needs peft=lora"
            )
        self.optim_cfg = self.hparams["optim"]
        self.head: LossHead = get_loss_head(**self.hparams["loss"])
        if self.head.needs_reference and self.ref_cfg["mode"] == "none":
            raise ValueError(
                f"loss={self.head.name} needs a reference model; ref.mode=none is only for loss=sft"
            )
        self.policy: torch.nn.Module | None = None
        self.reference: torch.nn.Module | None = None
        self._train_metrics = torch.nn.ModuleDict()
        self._tokens_since_log = 0
        self._last_log_time = time.perf_counter()
        self._step_at_batch_start = 0
        self._lr = None  # the learning rate of the optimizer step being logged

    # -- models -------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Create policy and reference here (idempotent), so sharded strategies can partition them."""
        if self.policy is not None:
            return
        strategy = self._trainer.strategy if self._trainer is not None else None
        with hf_zero3_context(strategy):  # ZeRO-3: transformers loads/initialises shard-wise
            policy = build_causal_lm(self.model_cfg)
            if self.head.needs_reference and self.ref_cfg["mode"] == "copy":
                # Built separately (never a deepcopy of a partitioned policy), then frozen.
                self.reference = freeze(build_reference_copy(policy, self.model_cfg, self.ref_cfg))
        self.policy = apply_lora(policy, self.peft_cfg) if peft_enabled(self.peft_cfg) else policy
        if (self.reference is not None or peft_enabled(self.peft_cfg)) and is_zero3(strategy):
            # DeepSpeed checkpoints leave frozen weights out (the reference, a LoRA run's base);
            # they are rebuilt above on resume.
            self.strict_loading = False

    def train(self, mode: bool = True) -> PreferenceModule:
        super().train(mode)
        if self.reference is not None:
            self.reference.eval()  # dropout etc. stay off in the reference, always
        return self

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Train mode for the policy on every step, whatever left it in eval mode.

        `from_pretrained` returns models in eval mode, Lightning keeps each submodule's mode
        at the start of `fit` and restores it after validation, and generation callbacks
        switch to eval; without this the policy would train with dropout off and
        transformers would silently skip gradient checkpointing (it checkpoints only in
        training mode).
        """
        self.train(True)
        self._step_at_batch_start = self.trainer.global_step

    # -- checkpoints: the reference and a LoRA run's frozen base are never saved ----------
    def _unsaved_keys(self) -> list[str]:
        """State-dict keys rebuilt on load instead of saved: the reference, and with LoRA on a
        pretrained base every frozen policy weight (at 70B the base is 141 GB, the adapters a few
        hundred MB); `model.name_or_path` gives them back. A random-init base is kept."""
        keys = [k for k in self.state_dict() if k.startswith(REFERENCE_PREFIX)]
        if peft_enabled(self.peft_cfg) and self.policy is not None and self.model_cfg.get("name_or_path"):
            keys += [f"policy.{n}" for n, p in self.policy.named_parameters() if not p.requires_grad]
        return keys

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict", {})
        for key in self._unsaved_keys():
            state.pop(key, None)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict")
        if state is None:
            return
        current = self.state_dict()
        for key in self._unsaved_keys():
            state.setdefault(key, current[key])  # as built by configure_model from the same config

    # -- the step ------------------------------------------------------------------------
    def compute_logps(self, batch: Batch) -> SequenceLogps:
        chunk = int(self.model_cfg.get("logprob_chunk_size", 1024))
        attention = str(self.model_cfg.get("segment_attention", "auto"))
        policy, tokens = role_logps(self.policy, batch, chunk, attention)
        reference = None
        if self.head.needs_reference:
            if batch.reference_logps is not None:  # precomputed by a pre-pass
                reference = batch.reference_logps
            elif self.ref_cfg["mode"] == "precomputed":
                raise ValueError(
                    "ref.mode=precomputed but the batch has no reference_logps (was the cache attached?)"
                )
            elif self.ref_cfg["mode"] == "adapter":  # the reference is the policy without its adapters
                was_training = self.policy.training
                self.policy.eval()  # the reference runs in eval mode (no dropout), like a frozen copy
                try:
                    with torch.no_grad(), self.policy.disable_adapter():
                        reference, _ = role_logps(self.policy, batch, chunk, attention)
                finally:
                    self.policy.train(was_training)
            else:
                with torch.no_grad():
                    reference, _ = role_logps(self.reference, batch, chunk, attention)
        return SequenceLogps(policy=policy, tokens=tokens, reference=reference)

    def _metric(self, name: str) -> MeanMetric:
        key = name.replace("/", "__")
        if key not in self._train_metrics:
            self._train_metrics[key] = MeanMetric().to(self.device)
        return self._train_metrics[key]

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        out = self.head(self.compute_logps(batch), batch)
        self._metric("loss").update(out.loss.detach(), weight=batch.batch_size)
        for name, values in out.metrics.items():
            self._metric(name).update(values.float())
        self._tokens_since_log += int(batch.attention_mask.sum())
        return out.loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # what this step applies (the scheduler moves it after)
        self._lr = float(optimizer.param_groups[0]["lr"])
        norms = [p.grad.detach().float().norm() for p in self.policy.parameters() if p.grad is not None]
        if norms:
            self.log("train/grad_norm", torch.stack(norms).norm(), on_step=True, on_epoch=False)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Log the metrics of every micro-batch since the last optimizer step, once that step is taken.

        Exact under gradient accumulation, the first optimizer step included: values accumulate
        (weighted per example) until the batch during which global_step advanced.
        """
        if self.trainer.global_step == self._step_at_batch_start:
            return  # still accumulating gradients
        for key, metric in self._train_metrics.items():
            if metric.update_count:
                self.log(
                    f"train/{key.replace('__', '/')}",
                    metric.compute(),
                    on_step=True,
                    on_epoch=False,
                    prog_bar=key in ("loss", "rewards__accuracies"),
                )
            metric.reset()
        now = time.perf_counter()
        tokens = self.all_gather(torch.tensor(self._tokens_since_log, device=self.device)).sum()
        self.log(
            "train/tokens_per_sec",
            tokens.float() / max(now - self._last_log_time, 1e-9),
            on_step=True,
            on_epoch=False,
        )
        self._tokens_since_log, self._last_log_time = 0, now
        if self._lr is not None:  # the one learning-rate series (no LearningRateMonitor alongside)
            self.log("train/lr", self._lr, on_step=True, on_epoch=False)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        out = self.head(self.compute_logps(batch), batch)
        size = batch.batch_size
        self.log("val/loss", out.loss, on_epoch=True, batch_size=size, sync_dist=True, prog_bar=True)
        for name, values in out.metrics.items():
            self.log(
                f"val/{name}",
                values.float().mean(),
                on_epoch=True,
                batch_size=size,
                sync_dist=True,
                prog_bar=name == "rewards/accuracies",
            )

    # -- optimisation --------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        decay, no_decay = [], []
        for name, parameter in self.policy.named_parameters():
            if parameter.requires_grad:  # ZeRO-3 placeholders are 1-D: use the full shape (ds_shape)
                (no_decay if len(getattr(parameter, "ds_shape", parameter.shape)) < 2 else decay).append(
                    parameter
                )
        optimizer = optimizer_class(self.trainer.strategy)(  # DeepSpeedCPUAdam under ZeRO-Offload
            [
                g
                for g in (
                    {"params": decay, "weight_decay": cfg["weight_decay"]},
                    {"params": no_decay, "weight_decay": 0.0},
                )
                if g["params"]
            ],
            lr=cfg["lr"],
            betas=tuple(cfg["betas"]),
            eps=cfg["eps"],
        )
        total = int(self.trainer.estimated_stepping_batches)
        extra = {"min_lr_rate": cfg["min_lr_ratio"]} if cfg["scheduler"] == "cosine_with_min_lr" else None
        scheduler = get_scheduler(
            cfg["scheduler"],
            optimizer,
            num_warmup_steps=int(cfg["warmup_ratio"] * total),
            num_training_steps=total,
            scheduler_specific_kwargs=extra,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
