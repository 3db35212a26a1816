"""One timed configuration of the step benchmark; each runs in its own process (clean RSS peak).

ifpo configurations run the real PreferenceModule through `lightning.Trainer.fit` (forward,
backward, optimizer step, scheduler, metrics); TRL runs `DPOTrainer.train`; the floor is a
bare padded policy forward+backward and a reference forward with full logits, no trainer.
All three time whole steps end to end (data loading included) after warm-up steps.
"""

from __future__ import annotations

import copy
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ifpo.bench.data import make_records, tokenize_records
from ifpo.config.schema import DPOLossConfig


@dataclass(frozen=True)
class Setup:
    name: str
    kind: str  # pair | quad
    runner: str  # ifpo | trl | floor
    loss: str = "dpo"
    packing: bool = True
    prefix_sharing: bool = True
    description: str = ""
    attention: str = "auto"  # model.segment_attention


SETUPS: dict[str, Setup] = {s.name: s for s in [
    Setup("ifpo-dpo", "pair", "ifpo", "dpo", True, True, "DPO, packing + prefix sharing (default)"),
    Setup("ifpo-dpo-packing", "pair", "ifpo", "dpo", True, False, "DPO, packing only"),
    Setup("ifpo-dpo-padded", "pair", "ifpo", "dpo", False, False, "DPO, padded rows (both switches off)"),
    # flex_attention: torch's CPU build has no flex backward, so on the CPU the reference forward
    # runs flex and the policy SDPA; each new row-length bucket compiles (seconds) on first use.
    Setup("ifpo-dpo-flex", "pair", "ifpo", "dpo", True, True, "DPO, packing + prefix sharing, flex (ref fwd)",
          attention="flex"),
    Setup("ifpo-dpo-packing-flex", "pair", "ifpo", "dpo", True, False, "DPO, packing only, flex (ref fwd)",
          attention="flex"),
    Setup("ifpo-rpo", "pair", "ifpo", "rpo", True, True, "RPO, packing + prefix sharing"),
    Setup("ifpo-iopo", "quad", "ifpo", "iopo", True, True, "IOPO quads, packing + prefix sharing"),
    Setup("ifpo-iopo-padded", "quad", "ifpo", "iopo", False, False, "IOPO quads, padded rows"),
    Setup("trl-dpo", "pair", "trl", description="TRL DPOTrainer (same model, data, batch, fp32)"),
    Setup("floor", "pair", "floor", description="bare padded policy fwd+bwd + ref fwd, full logits"),
]}

OPTIM = {
    "lr": 1e-5,
    "weight_decay": 0.0,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "scheduler": "constant_with_warmup",
    "warmup_ratio": 0.0,
    "min_lr_ratio": 0.0,
}
# The heads at their schema defaults (ifpo.config.schema is their one home; get_loss_head fills them in).
LOSSES = {name: {"name": name} for name in ("dpo", "rpo", "iopo")}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def workload_tokens(examples: list[dict[str, Any]], kind: str) -> int:
    """Real tokens of the workload: every (prompt, response) sequence, counted once, no pads.

    The same count for every configuration, so tokens/s compares like with like even when
    prefix sharing computes each prompt only once.
    """
    if kind == "pair":
        return sum(2 * len(e["prompt_ids"]) + len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples)
    return sum(
        2 * (len(e["x1_ids"]) + len(e["x2_ids"]) + len(e["y1_ids"]) + len(e["y2_ids"])) for e in examples
    )


def _model_cfg(workdir: Path, attention: str = "auto") -> dict[str, Any]:
    return {
        "name_or_path": None,
        "config": str(workdir / "model"),
        "tokenizer": str(workdir / "tokenizer"),
        "dtype": "float32",
        "attn_implementation": "sdpa",
        "gradient_checkpointing": False,
        "logprob_chunk_size": 1024,
        "trust_remote_code": False,
        "segment_attention": attention,
        # The bench tokenises raw text itself; load_tokenizer refuses a tokenizer without a template.
        "chat_template": "chatml",
    }


def _examples(setup: Setup, tokenizer: Any, count: int) -> list[dict[str, Any]]:
    return tokenize_records(make_records(setup.kind, count, seed=1), tokenizer)


def run_ifpo(setup: Setup, workdir: Path, batch: int, warmup: int, steps: int) -> list[float]:
    import lightning.pytorch as pl

    from ifpo.data.datamodule import make_collator
    from ifpo.losses import get_loss_head
    from ifpo.models.loading import load_tokenizer
    from ifpo.training.module import PreferenceModule

    tokenizer = load_tokenizer(_model_cfg(workdir))
    examples = _examples(setup, tokenizer, batch * (warmup + steps))
    head = get_loss_head(**LOSSES[setup.loss])
    collator = make_collator(
        {"packing": setup.packing, "prefix_sharing": setup.prefix_sharing}, head.roles, tokenizer.pad_token_id
    )
    loader = DataLoader(examples, batch_size=batch, shuffle=False, collate_fn=collator, drop_last=True)
    stamps: list[float] = []

    class Stamp(pl.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            stamps.append(time.perf_counter())

    torch.manual_seed(0)
    module = PreferenceModule(
        _model_cfg(workdir, setup.attention),
        {"mode": "copy", "name_or_path": None},
        LOSSES[setup.loss],
        OPTIM,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Stamp()],
        num_sanity_val_steps=0,
        precision="32-true",
    )
    trainer.fit(module, train_dataloaders=loader)
    return stamps


def run_trl(setup: Setup, workdir: Path, batch: int, warmup: int, steps: int) -> list[float]:
    import datasets
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(workdir / "tokenizer")
    records = make_records("pair", batch * (warmup + steps), seed=1)
    train = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in records])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        AutoConfig.from_pretrained(workdir / "model"), attn_implementation="sdpa"
    )
    reference = copy.deepcopy(model).eval()
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

    args = DPOConfig(
        output_dir=str(workdir / "trl_out"),
        per_device_train_batch_size=batch,
        max_steps=warmup + steps,
        learning_rate=OPTIM["lr"],
        lr_scheduler_type="constant",
        beta=DPOLossConfig.beta,  # the same beta as our DPO head (its schema default)
        max_length=None,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=10_000,
        dataloader_num_workers=0,
        bf16=False,
        fp16=False,
        disable_tqdm=True,
        seed=0,
        gradient_checkpointing=False,
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=reference,
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        callbacks=[Stamp()],
    )
    trainer.train()
    return stamps


def run_floor(setup: Setup, workdir: Path, batch: int, warmup: int, steps: int) -> list[float]:
    from transformers import AutoConfig, AutoModelForCausalLM

    from ifpo.data.collate import PreferenceCollator
    from ifpo.models.loading import load_tokenizer

    tokenizer = load_tokenizer(_model_cfg(workdir))
    examples = _examples(setup, tokenizer, batch * (warmup + steps))
    collator = PreferenceCollator(("chosen", "rejected"), tokenizer.pad_token_id)
    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_config(
        AutoConfig.from_pretrained(workdir / "model"), attn_implementation="sdpa"
    )
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    stamps = []
    for start in range(0, len(examples), batch):
        padded = collator(examples[start : start + batch])
        logits = policy(input_ids=padded.input_ids, attention_mask=padded.attention_mask).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), padded.labels[:, 1:].flatten()
        )
        loss.backward()
        with torch.no_grad():
            reference(input_ids=padded.input_ids, attention_mask=padded.attention_mask).logits.sum()
        del logits, loss
        stamps.append(time.perf_counter())
    return stamps


RUNNERS: dict[str, Callable[..., list[float]]] = {"ifpo": run_ifpo, "trl": run_trl, "floor": run_floor}


def measure(name: str, workdir: Path, batch: int, warmup: int, steps: int) -> dict[str, Any]:
    """Run one setup; examples/s and tokens/s over the steps after warm-up, and the RSS peak."""
    setup = SETUPS[name]
    torch.set_num_threads(torch.get_num_threads())
    stamps = RUNNERS[setup.runner](setup, workdir, batch, warmup, steps)
    if len(stamps) < warmup + steps:
        raise RuntimeError(f"{name}: recorded {len(stamps)} steps, expected {warmup + steps}")
    # Median step time: robust to other jobs stealing the (shared) CPUs for a step or two.
    durations = sorted(
        b - a for a, b in zip(stamps[warmup - 1 : warmup + steps - 1], stamps[warmup : warmup + steps])
    )
    elapsed = durations[len(durations) // 2] * steps
    from ifpo.models.loading import load_tokenizer

    timed = _examples(setup, load_tokenizer(_model_cfg(workdir)), batch * (warmup + steps))[batch * warmup :]
    return {
        "name": name,
        "description": setup.description,
        "kind": setup.kind,
        "examples_per_s": len(timed) / elapsed,
        "tokens_per_s": workload_tokens(timed, setup.kind) / elapsed,
        "step_s": elapsed / steps,
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
    }
