"""Stage 5: each LoRA training checkpoint as a plain Hugging Face folder (adapters merged), for eval.py.

The project's exporter (``ifpo.scale.export.export_checkpoint``, what ``python -m ifpo.scale.export``
runs) does the work: a ``peft=lora`` run on a pretrained base saves only the adapters, so it rebuilds
the base from the checkpoint's own ``model.name_or_path``, loads the adapters, re-ties SmolLM2's tied
``lm_head`` and merges (PEFT's ``merge_and_unload``). The start model's ``generation_config.json``
(every end-of-turn id the conversion found) is copied in, so the merged model stops generating exactly
where the start model does; a vLLM sampler or evaluator can serve the folder as is.

    python -m experiments.smol_ifeval.export START_DIR RUN/checkpoints/last.ckpt:OUT_DIR [...]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ifpo.scale.export import export_checkpoint


def export_lora_checkpoint(ckpt: Path, out_dir: Path, start_dir: Path) -> Path:
    """Write the merged policy of ``ckpt`` to ``out_dir`` (a temp folder renamed into place)."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    export_checkpoint(ckpt, tmp)
    shutil.copy2(start_dir / "generation_config.json", tmp / "generation_config.json")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.replace(out_dir)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "start_dir", type=Path, help="the start model's HF folder (its generation_config.json)"
    )
    parser.add_argument("pairs", nargs="+", help="CKPT:OUT_DIR")
    args = parser.parse_args()
    for pair in args.pairs:
        ckpt, _, out = pair.rpartition(":")
        if not ckpt:
            raise SystemExit(f"{pair!r}: expected CKPT:OUT_DIR")
        print(
            f"exported {ckpt} -> {export_lora_checkpoint(Path(ckpt), Path(out), args.start_dir)}", flush=True
        )


if __name__ == "__main__":
    main()
