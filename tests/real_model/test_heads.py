"""Every head trains the real model, with LoRA and with full fine-tuning, in the packed and the
padded layout: loss finite and falling on a repeated batch."""

from __future__ import annotations

import math

import pytest
import torch

from ifpo.models.batch import PackedBatch
from ifpo.training.pipeline import build
from tests.hydra_helpers import compose_config

# (head, peft, packing): each head once with LoRA and once fully fine-tuned, and across the
# matrix both layouts for every head (the cross product would double the runtime).
CASES = [
    ("sft", "lora", True), ("sft", "none", False),
    ("dpo", "lora", False), ("dpo", "none", True),
    ("rpo", "lora", True), ("rpo", "none", False),
    ("iopo", "lora", False), ("iopo", "none", True),
]
STEPS = 3


@pytest.mark.parametrize(
    "head,peft,packing", CASES, ids=[f"{h}-{p}-{'packed' if k else 'padded'}" for h, p, k in CASES]
)
def test_head_trains_the_real_model(tmp_path, smollm2_cfg, record_files, head, peft, packing):
    kind = "quad" if head == "iopo" else "pair"
    lora = peft == "lora"
    cfg = compose_config(
        "train",
        [
            "model=smollm2_135m",
            f"loss={head}",
            f"peft={peft}",
            "data=files",
            f"data.train_files=[{record_files[kind]}]",
            "data.batch_size=2",
            f"data.packing={packing}",
            "data.max_length=64",
            "data.max_prompt_length=48",
            "data.num_workers=0",
            "data.shuffle=false",
        ]
        + (["peft.r=8", "peft.alpha=16", "peft.dropout=0.0", "ref.mode=adapter"] if lora else []),
        output_dir=tmp_path,
    )
    module, datamodule, _ = build(cfg)
    datamodule.setup("fit")
    module.configure_model()
    module.train()
    batch = next(iter(datamodule.train_dataloader()))
    assert batch.batch_size == 2 and isinstance(batch, PackedBatch) == packing
    trainable = [p for p in module.policy.parameters() if p.requires_grad]
    total = sum(p.numel() for p in module.policy.parameters())
    assert (sum(p.numel() for p in trainable) < total / 10) == lora
    optimizer = torch.optim.AdamW(trainable, lr=1e-3 if lora else 2e-5, weight_decay=0.0)
    losses = []
    for _ in range(STEPS):
        out = module.head(module.compute_logps(batch), batch)
        losses.append(out.loss.item())
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(math.isfinite(v) for v in losses), losses
    if head in ("dpo", "iopo"):  # policy == reference at the start (LoRA B = 0 / a copy)
        assert losses[0] == pytest.approx(math.log(2), abs=1e-4)
    assert losses[-1] < losses[0], losses
