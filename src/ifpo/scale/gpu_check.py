"""`make gpu-check`: a few ZeRO-3 DPO steps of a random-init ~1B Llama on the local GPU(s).

Prints tokens/s, model FLOPs utilisation and peak GPU memory, so a new machine or container
can be validated in minutes before a long run. Uses the real pipeline (Hydra config,
DeepSpeedStrategy, chunked log-probs) with synthetic data; nothing is downloaded.
Then (unless `--no-compare`) it compares the segment-attention kernels, SDPA with dense
per-segment masks, flex_attention and flash-attn varlen, on one GPU at 2,048 and 8,192-token
sequences (`python -m ifpo.bench gpu`: tokens/s, MFU, peak memory per layout and kernel).
On a machine without CUDA it refuses with a message and exit code 2.

MFU = achieved model FLOP/s / peak bf16 FLOP/s, with 6 * params FLOPs per trained token for the
policy (forward + backward) and 2 * params per token for the reference forward (Kaplan et al.).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

#: ~1.1B parameters, Llama-3 shaped (vocab of the committed tiny tokenizer: the LM head is small).
ONE_B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 1024, "hidden_size": 2048,
    "intermediate_size": 8192, "num_hidden_layers": 20, "num_attention_heads": 16, "num_key_value_heads": 8,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "hidden_act": "silu",
    "initializer_range": 0.02, "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1,
    "pad_token_id": 2,
}  # fmt: skip
#: Dense bf16 peak FLOP/s by device name fragment (vendor data sheets, no sparsity).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def params_of(config: dict) -> int:
    h, m, layers, v = (
        config["hidden_size"],
        config["intermediate_size"],
        config["num_hidden_layers"],
        config["vocab_size"],
    )
    kv = h // config["num_attention_heads"] * config["num_key_value_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * m + 2 * h
    return 2 * v * h + layers * per_layer + h


class Meter:
    """Lightning callback: wall time and tokens of the steps after warm-up."""

    def __init__(self, warmup: int) -> None:
        import lightning.pytorch as pl

        outer = self

        class _Callback(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if trainer.global_step == warmup:
                    torch.cuda.synchronize()
                    outer.start = time.perf_counter()
                    outer.tokens = 0

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                if outer.start is not None:
                    outer.tokens += int(batch.attention_mask.sum())

        self.start: float | None = None
        self.tokens = 0
        self.callback = _Callback()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ifpo.scale.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    ap.add_argument("--batch", type=int, default=4, help="pairs per GPU per step")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument(
        "--segment-attention",
        default="auto",
        choices=["auto", "flex", "sdpa"],
        help="model.segment_attention of the pipeline check",
    )
    ap.add_argument("--no-compare", action="store_true", help="skip the attention-kernel comparison")
    ap.add_argument("--compare-lengths", type=int, nargs="+", default=[2048, 8192])
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check needs a CUDA GPU: torch.cuda.is_available() is False on this machine "
              f"(torch {torch.__version__}). Nothing was run.", file=sys.stderr)  # fmt: skip
        return 2

    root = Path(os.environ.get("IFPO_ROOT") or Path(__file__).resolve().parents[3])
    os.environ.setdefault("IFPO_ROOT", str(root))
    with tempfile.TemporaryDirectory(prefix="ifpo_gpu_check_") as tmp:
        figures = run_check(root, Path(tmp), args)
    print(json.dumps(figures, indent=1), flush=True)
    if not args.no_compare:
        figures["kernel_comparison"] = compare_kernels(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


def compare_kernels(args: argparse.Namespace) -> dict:
    """The attention-kernel table of `python -m ifpo.bench gpu` (printed), returned for the JSON."""
    import gc

    from ifpo.bench.gpu import gpu_report

    gc.collect()  # the pipeline check's trainer and models are gone: give their memory back first
    torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory(prefix="ifpo_gpu_kernels_") as tmp:
        out = Path(tmp) / "kernels.json"
        opts = argparse.Namespace(
            lengths=args.compare_lengths,
            batch=4,
            steps=5,
            warmup=2,
            cpu_smoke=False,
            peak_tflops=(peak_flops(torch.cuda.get_device_name()) or 989e12) / 1e12,
            json=str(out),
        )
        gpu_report(opts)
        return json.loads(out.read_text())


def run_check(root: Path, tmp: Path, args: argparse.Namespace) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    import ifpo.config  # noqa: F401  (registers the schemas)
    from ifpo.config.plain import entry_config
    from ifpo.training.pipeline import build

    (tmp / "model").mkdir()
    (tmp / "model" / "config.json").write_text(json.dumps(ONE_B))
    overrides = [
        "loss=dpo", "strategy=zero3", "trainer=gpu", "trainer.devices=1", "trainer.precision=bf16-mixed",
        f"trainer.max_steps={args.steps}", "trainer.limit_val_batches=0", "trainer.val_check_interval=null",
        "trainer.enable_model_summary=false", "model.dtype=bfloat16", f"model.config={tmp / 'model'}",
        "model.gradient_checkpointing=true", f"data.batch_size={args.batch}",
        f"data.max_length={args.max_length}",
        f"data.max_prompt_length={args.max_length // 2}", "data.synthetic.records=dpo",
        "callbacks.model_checkpoint=null", "optim=adamw", f"model.segment_attention={args.segment_attention}",
    ]  # fmt: skip
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = str(tmp / "run")
        cfg.paths.data_dir = str(tmp / "data")
    module, datamodule, trainer = build(entry_config(cfg))
    meter = Meter(args.warmup)
    trainer.callbacks.append(meter.callback)
    torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=datamodule)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - (meter.start or time.perf_counter())
    tokens_per_sec = meter.tokens / max(seconds, 1e-9)
    params = params_of(ONE_B)
    flops_per_token = 6 * params + 2 * params  # policy forward+backward, reference forward
    name = torch.cuda.get_device_name()
    peak = peak_flops(name)
    return {
        "device": name,
        "params": params,
        "segment_attention": args.segment_attention,
        "timed_steps": args.steps - args.warmup,
        "tokens_per_sec": round(tokens_per_sec, 1),
        "mfu": round(tokens_per_sec * flops_per_token / peak, 4) if peak else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "final_loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
    }


if __name__ == "__main__":
    sys.exit(main())
