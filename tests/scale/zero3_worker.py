"""One 2-process ZeRO-3 run on CPU (gloo) shared by the assertions of test_zero3_cpu.py.

Started as `python tests/scale/zero3_worker.py OUT DATA_DIR TINY_CONFIG PRETRAINED`; Lightning's
subprocess launcher starts the second rank by re-running this script. Rank 0 writes
OUT/results.json with per-step global losses, shard sizes, checkpoint files and export checks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("IFPO_ROOT", str(ROOT))

import lightning.pytorch as pl
import torch
from transformers import AutoModelForCausalLM

from ifpo.models.export import export_hf
from ifpo.training.pipeline import build
from tests.hydra_helpers import compose_config
from tests.scale.zero3_common import head_overrides, shared_overrides


class LossRecorder(pl.Callback):
    """Per optimizer step: the loss averaged over ranks (what a single process over the union sees)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.start_step: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"].detach().reshape(1).float()
        self.losses.append(float(trainer.strategy.reduce(loss, reduce_op="mean")))


def shard_sizes(module: torch.nn.Module) -> list[list]:
    """[name, numel held by this rank, full numel] for every partitioned parameter."""
    return [
        [n, int(p.ds_tensor.numel()), int(p.ds_numel)]
        for n, p in module.named_parameters()
        if hasattr(p, "ds_tensor")
    ]


def fit(
    out: Path,
    data_dir: Path,
    tiny: str,
    pretrained: str | None,
    overrides: list[str],
    ckpt_path: str | None = None,
):
    cfg = compose_config(
        "train", shared_overrides(tiny, 2, pretrained) + overrides, output_dir=out, data_dir=data_dir
    )
    module, datamodule, trainer = build(cfg)
    recorder = LossRecorder()
    trainer.callbacks.append(recorder)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return cfg, module, datamodule, trainer, recorder


IDS = torch.tensor([list(range(5, 37))])


def trained_logits(module, save_to: Path | None = None) -> torch.Tensor:
    """The trained policy's logits on fixed ids (every rank runs the forward: ZeRO-3 gathers);
    rank 0 saves them for the export-from-checkpoint tests of test_zero3_cpu.py."""
    module.eval()
    with torch.no_grad():
        logits = module.policy(input_ids=IDS).logits.float()
    if save_to is not None and module.global_rank == 0:
        torch.save(logits, save_to)
    return logits


def logits_match(module, datamodule, cfg, export_dir: Path, save_to: Path | None = None) -> dict:
    """Export the policy (all ranks gather), reload it with from_pretrained, compare logits."""
    from ifpo.models.loading import load_tokenizer

    ids = IDS
    trained = trained_logits(module, save_to)
    path = export_hf(module.policy, export_dir, load_tokenizer(cfg.model), module.peft_cfg)
    if path is None:
        return {}
    loaded = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        exported = loaded(input_ids=ids).logits.float()
    return {
        "max_abs_diff": float((trained - exported).abs().max()),
        "files": sorted(p.name for p in path.iterdir()),
        "lora_modules_left": sum("lora" in n for n, _ in loaded.named_parameters()),
    }


def main() -> None:
    out, data_dir, tiny, pretrained = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    results: dict = {"losses": {}, "shards": {}}
    for head in ("dpo", "iopo"):  # pretrained weights, loaded shard-wise under ZeRO-3
        cfg, module, dm, trainer, rec = fit(
            out / head, data_dir, tiny, pretrained, head_overrides(head) + ["trainer.max_steps=2"]
        )
        results["losses"][head] = rec.losses
        if head == "dpo":
            results["shards"] = {"world_size": trainer.world_size, "policy": shard_sizes(module.policy),
                                 "reference": shard_sizes(module.reference)}  # fmt: skip
            results["export_full"] = logits_match(module, dm, cfg, out / "export_full")

    # RPO: 2 steps, sharded checkpoint, then resume to step 3 in a fresh trainer.
    rpo = head_overrides("rpo") + ["callbacks.model_checkpoint.every_n_train_steps=2"]
    _, module, _, _, rec = fit(out / "rpo", data_dir, tiny, pretrained, rpo + ["trainer.max_steps=2"])
    ckpt = out / "rpo" / "checkpoints" / "step000002.ckpt"  # a DeepSpeed checkpoint is a folder of shards
    trained_logits(module, out / "rpo_step2_logits.pt")  # what exporting that folder must reproduce
    results["losses"]["rpo"] = rec.losses
    results["checkpoint_files"] = (
        sorted(str(p.relative_to(ckpt)) for p in ckpt.rglob("*") if p.is_file()) if ckpt.is_dir() else []
    )
    if ckpt.is_dir():
        states = torch.load(
            next(ckpt.rglob("zero_pp_rank_0_mp_rank_00_model_states.pt")),
            map_location="cpu",
            weights_only=False,
        )
        results["checkpoint_module_keys"] = sorted(states.get("module", {}) or {})
    _, _, _, trainer, rec = fit(
        out / "rpo_resumed", data_dir, tiny, pretrained, rpo + ["trainer.max_steps=3"], ckpt_path=str(ckpt)
    )
    results["rpo_resumed"] = {
        "start_step": rec.start_step,
        "losses": rec.losses,
        "global_step": trainer.global_step,
    }

    # Random init under ZeRO-3 (rank 0 initialises) + LoRA + a reference copied parameter by
    # parameter: at step 1 policy == reference exactly, so the loss is RPO's margin-only value.
    lora = head_overrides("rpo") + ["peft=lora", "peft.r=4", "peft.alpha=8", "peft.dropout=0.0"]
    _, module, _, _, rec = fit(
        out / "lora_copy", data_dir, tiny, None, lora + ["ref.mode=copy", "trainer.max_steps=1"]
    )
    results["losses"]["rpo_lora_copy_random_init"] = rec.losses
    results["lora_copy_reference_shards"] = shard_sizes(module.reference)

    # LoRA with the adapter-disabled reference (no second model): train 2 steps, export merged.
    cfg, module, dm, trainer, rec = fit(
        out / "lora", data_dir, tiny, pretrained,
        lora + ["ref.mode=adapter", "trainer.max_steps=2",
        "callbacks.model_checkpoint.every_n_train_steps=2"],
    )  # fmt: skip
    results["losses"]["rpo_lora_adapter"] = rec.losses
    results["lora_shards"] = shard_sizes(module.policy)
    results["lora_reference_is_none"] = module.reference is None
    results["export_lora"] = logits_match(module, dm, cfg, out / "export_lora", out / "lora_step2_logits.pt")

    if trainer.global_rank == 0:
        (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
