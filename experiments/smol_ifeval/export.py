"""Stage 5: each LoRA training checkpoint as a plain Hugging Face folder (adapters merged), for eval.py.

``eval.py eval.checkpoint=<.ckpt>`` loads plain ``policy.*`` weights only; a ``peft=lora`` run
saves the PEFT-wrapped policy (base + adapter tensors). This rebuilds that policy from the
checkpoint's own saved ``model`` and ``peft`` configs, loads its weights strictly, merges the
adapters (PEFT's ``merge_and_unload``) and saves the plain model. Not ``ifpo.models.export.export_hf``:
its meta-device skeleton loses a tied ``lm_head`` (SmolLM2 ties it to the embeddings) once PEFT
unties the pair on merging ("parameters never received weights: ['lm_head.weight']"); merging the
real, loaded model keeps every tensor. The start
model's ``generation_config.json`` (every end-of-turn id the conversion found) is copied in, so
the merged model stops generating exactly where the start model does; a vLLM sampler or
evaluator can serve the folder as is.

    python -m experiments.smol_ifeval.export START_DIR RUN/checkpoints/last.ckpt:OUT_DIR [...]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from ifpo.models.checkpoint import CheckpointError, _read, policy_state_dict
from ifpo.models.loading import build_causal_lm, load_tokenizer
from ifpo.models.lora import apply_lora, peft_enabled


def export_lora_checkpoint(ckpt: Path, out_dir: Path, start_dir: Path) -> Path:
    """Write the merged policy of ``ckpt`` to ``out_dir`` (a temp folder renamed into place)."""
    hparams = _read(ckpt).get("hyper_parameters") or {}
    model_cfg, peft_cfg = hparams.get("model"), hparams.get("peft") or {}
    if not isinstance(model_cfg, dict):
        raise CheckpointError(
            f"{ckpt}: no saved model config (hyper_parameters.model); not a train.py checkpoint?"
        )
    policy = build_causal_lm(model_cfg)
    if peft_enabled(peft_cfg):
        policy = apply_lora(policy, peft_cfg)
    result = policy.load_state_dict(policy_state_dict(ckpt), strict=False)
    tied = set(getattr(policy, "_tied_weights_keys", None) or [])
    missing = [k for k in result.missing_keys if not any(k.endswith(t) for t in tied) and "lm_head" not in k]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{ckpt}: policy weights do not fit its saved model/peft config "
            f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with torch.no_grad():
        merged = policy.merge_and_unload() if peft_enabled(peft_cfg) else policy  # W += (alpha/r) B A
    merged.save_pretrained(tmp, safe_serialization=True)
    load_tokenizer(model_cfg).save_pretrained(tmp)
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
