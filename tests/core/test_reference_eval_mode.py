"""The reference runs in eval mode whatever the policy's mode, also when it is the policy itself
with its LoRA adapters disabled (ref.mode=adapter)."""

from __future__ import annotations

import torch

from ifpo.training.pipeline import build
from tests.hydra_helpers import compose_config


def test_adapter_reference_forward_runs_in_eval_mode(tmp_path, shared_data_dir):
    cfg = compose_config(
        "train",
        ["debug=fast", "data.batch_size=2", "peft=lora", "peft.r=4", "peft.alpha=8", "ref.mode=adapter"],
        output_dir=tmp_path,
        data_dir=shared_data_dir,
    )
    module, datamodule, _ = build(cfg)
    datamodule.setup("fit")
    module.configure_model()
    module.train()
    modes: list[tuple[bool, bool]] = []  # (layer in train mode, gradients on) per decoder forward
    layer = module.policy.get_base_model().model.layers[0]
    layer.register_forward_pre_hook(lambda m, *_: modes.append((m.training, torch.is_grad_enabled())))
    module.compute_logps(next(iter(datamodule.train_dataloader())))
    assert modes == [(True, True), (False, False)]  # policy pass in train mode, reference pass in eval
    assert all(m.training for m in module.policy.modules())  # and the policy is back in train mode
