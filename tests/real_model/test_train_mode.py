"""The policy trains in train mode on every step (the reference never does), and gradient
checkpointing really recomputes layers, on a model that `from_pretrained` returned in eval mode."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from ifpo.models.loading import build_causal_lm
from ifpo.training.pipeline import build
from tests.hydra_helpers import compose_config


def _layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model.layers


def _count_layer_forwards(model: torch.nn.Module, hook) -> list:  # type: ignore[no-untyped-def]
    """A pre-hook on each decoder layer's first submodule (its input norm).

    transformers checkpoints a layer's `forward`, not its `__call__`, so hooks on the layer
    itself never re-run; and torch stops a recompute early once it has rebuilt the saved
    tensors, so post-hooks of later submodules may not fire. A pre-hook on the first
    submodule fires exactly once per recompute.
    """
    return [layer.input_layernorm.register_forward_pre_hook(hook) for layer in _layers(model)]


class LayerForwardCounter(pl.Callback):
    """Counts policy decoder-layer forwards that run during backward (= checkpoint recomputation)."""

    def __init__(self) -> None:
        self.in_backward = False
        self.recomputed: list[int] = []
        self.modes: list[tuple[bool, bool]] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        def hook(*_):
            if self.in_backward:
                self.recomputed[-1] += 1

        _count_layer_forwards(pl_module.policy, hook)

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        # The modes the forward just ran in: every policy submodule training, no reference one.
        policy_train = all(m.training for m in pl_module.policy.modules())
        reference_eval = not any(m.training for m in pl_module.reference.modules())
        self.modes.append((policy_train, reference_eval))
        self.recomputed.append(0)
        self.in_backward = True

    def on_after_backward(self, trainer, pl_module) -> None:
        self.in_backward = False


def test_policy_trains_in_train_mode_and_checkpointing_recomputes(tmp_path, smollm2_cfg, record_files):
    cfg = compose_config(
        "train",
        [
            "model=smollm2_135m",
            "model.gradient_checkpointing=true",
            "loss=dpo",
            "data=files",
            f"data.train_files=[{record_files['pair']}]",
            f"data.val_files=[{record_files['pair']}]",
            "data.batch_size=1",
            "data.eval_batch_size=1",
            "data.num_workers=0",
            "data.max_length=64",
            "data.max_prompt_length=48",
            "data.shuffle=false",
            "trainer.max_steps=2",
            "trainer.val_check_interval=1",
            "+trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1",
            "trainer.enable_model_summary=false",
            "+trainer.enable_checkpointing=false",
            "~callbacks",
            "~logger",
        ],
        output_dir=tmp_path,
    )
    module, datamodule, trainer = build(cfg)
    counter = LayerForwardCounter()
    trainer.callbacks.append(counter)
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 2
    # Step 2 follows a validation pass (which Lightning ends by restoring the eval mode
    # from_pretrained left): train mode must hold there too.
    assert counter.modes == [(True, True), (True, True)]
    layers = len(_layers(module.policy))
    assert counter.recomputed == [layers, layers]  # each layer re-ran once in backward


def _recomputed_layers(model: torch.nn.Module) -> int:
    counts = {"backward": False, "n": 0}

    def hook(*_):
        counts["n"] += counts["backward"]

    handles = _count_layer_forwards(model, hook)
    ids = torch.tensor([[1, 504, 3458, 28, 2]])
    loss = model(input_ids=ids, labels=ids).loss
    counts["backward"] = True
    loss.backward()
    for handle in handles:
        handle.remove()
    return counts["n"]


def test_checkpointing_needs_train_mode_the_failure_this_guards(smollm2_cfg):
    """Control for the counter: in eval mode (how from_pretrained returns the model) nothing is recomputed."""
    model = build_causal_lm({**smollm2_cfg, "gradient_checkpointing": True})
    assert not model.training  # from_pretrained's mode
    assert _recomputed_layers(model) == 0
    model.train()
    assert _recomputed_layers(model) == len(_layers(model))
