"""Peak memory of a real 2-rank ZeRO-3 run on CPU, per rank, for test_planner_measured.py.

Started as `python tests/scale/zero3_memory_worker.py OUT DATA_DIR MODEL_DIR`; Lightning's
subprocess launcher re-runs this script for rank 1. On CPU every planner term (the "GPU" states,
activations, log-prob workspace, LM-head gradient, and rank 0's full copy of the weights for
from_pretrained and the export) lives in the process's resident set, so each rank measures its
RSS high-water mark (VmHWM) over model building, training and the export at the end, above the
RSS it had before the model existed. Each rank writes OUT/rank<k>.json.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("IFPO_ROOT", str(ROOT))

import deepspeed  # noqa: F401  (imported before the baseline: its import is not training memory)
import torch

from ifpo.bench.logprob_memory import _current_rss, _peak_rss, _reset_peak_rss
from ifpo.training.pipeline import build, export_at_end
from tests.hydra_helpers import compose_config
from tests.scale.zero3_common import shared_overrides


def overrides(model_dir: str) -> list[str]:
    """Full fine-tuning, reference copy, fp32, 2 ranks x 2 pairs, log-prob chunk 64, export at end."""
    return shared_overrides(model_dir, 2, model_dir) + [
        "ref.mode=copy", "model.logprob_chunk_size=64", "trainer.max_steps=2", "export.at_end=true",
        "callbacks.model_checkpoint=null", "callbacks.resume_checkpoint=null", "data.packing=false",
    ]  # fmt: skip


def main() -> None:
    out, data_dir, model_dir = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    cfg = compose_config("train", overrides(model_dir), output_dir=out / "run", data_dir=data_dir)
    module, datamodule, trainer = build(cfg)
    datamodule.setup("fit")
    next(iter(datamodule.train_dataloader()))  # tokenisation and collation before the baseline
    gc.collect()
    _reset_peak_rss()
    baseline = _current_rss()
    trainer.fit(module, datamodule=datamodule)
    export_at_end(cfg, module, datamodule)
    peak = _peak_rss()
    rank = trainer.global_rank
    result = {"rank": rank, "baseline": baseline, "peak": peak, "delta": peak - baseline,
              "world_size": trainer.world_size, "steps": trainer.global_step,
              "torch_threads": torch.get_num_threads()}  # fmt: skip
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
