"""Stage 2b: a training checkpoint's policy as a Hugging Face folder, the next stages' starting point.

The preference runs start from the SFT weights through ``model.name_or_path=<folder>``
(train.py has no "initialise from a .ckpt" knob, and ``ifpo.models.export.export_hf`` needs a
live training process), so the policy is rebuilt with the eval harness's strict loader and
saved with ``save_pretrained``. The same folder is what a vLLM sampler would serve at scale.

    python -m experiments.mini_if.export RUN/checkpoints/last.ckpt OUT_DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ifpo.models.checkpoint import checkpoint_model_config, load_policy


def export_checkpoint(ckpt: Path, out_dir: Path) -> Path:
    """Write model + tokenizer of ``ckpt`` to ``out_dir`` (written to a temp folder, then renamed)."""
    model_cfg = checkpoint_model_config(ckpt)
    if model_cfg is None:
        raise SystemExit(
            f"{ckpt}: no model config in the checkpoint's hyperparameters; not a train.py checkpoint?"
        )
    model, tokenizer = load_policy(model_cfg, ckpt)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(out_dir) if not out_dir.exists() else None
    if tmp.exists():  # out_dir existed (a forced redo): swap the contents
        import shutil

        shutil.rmtree(out_dir)
        tmp.replace(out_dir)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    print(f"exported {args.checkpoint} -> {export_checkpoint(args.checkpoint, args.out_dir)}")


if __name__ == "__main__":
    main()
