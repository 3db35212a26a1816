"""Export the trained policy as a Hugging Face folder (safetensors + config + tokenizer).

Two ways in, one way out:

* in-process (:func:`ifpo.models.export.export_hf`, used by `export.at_end=true`): parameters are gathered
one at a
  time under ZeRO-3 (never the whole model on a GPU) into a CPU state dict on rank 0;
* from a checkpoint (:func:`export_checkpoint`, `python -m ifpo.scale.export CKPT OUT`): a
  single-file Lightning `.ckpt`, or a DeepSpeed ZeRO-3 checkpoint *directory*, whose shards
  DeepSpeed's own `get_fp32_state_dict_from_zero_checkpoint` consolidates (trainable fp32 master
  weights plus the frozen base when LoRA kept it in the checkpoint).

Either way the weights load into a model skeleton built on the meta device from the run's own
`model` / `peft` hyper-parameters (saved in the checkpoint; else the run folder's
`.hydra/config.yaml`), LoRA adapters are merged with PEFT's `merge_and_unload`, and the folder is a
plain model that `from_pretrained` loads. Rank 0 needs host RAM for one full copy of the weights
(about 141 GB for 70B in bf16; the planner's "host RAM per node" includes it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, GenerationConfig

from ifpo.config.plain import to_plain
from ifpo.models.export import ExportError, write_hf_folder

log = logging.getLogger(__name__)

POLICY_PREFIX = "policy."
WRAPPER_PREFIX = "_forward_module."  # Lightning < 2.1 DeepSpeed checkpoints
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# -- from a checkpoint ----------------------------------------------------------------------
def _hydra_run_config(checkpoint: Path) -> dict[str, Any]:
    """model/peft from the run folder's .hydra/config.yaml (checkpoints/<ckpt> -> run folder)."""
    from omegaconf import OmegaConf

    for folder in list(checkpoint.parents)[:3]:
        config_file = folder / ".hydra" / "config.yaml"
        if config_file.is_file():
            cfg = OmegaConf.load(config_file)
            try:
                return {
                    "model": to_plain(cfg.model),
                    "peft": to_plain(cfg.get("peft")),
                    "source": str(config_file),
                }
            except Exception as exc:  # an interpolation only the original run could resolve
                raise ExportError(f"{config_file}: cannot resolve model/peft ({exc})") from exc
    return {}


def _hyper_parameters(checkpoint: Path, saved: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, peft config): from the checkpoint's hyper-parameters, else the run's .hydra config."""
    if isinstance(saved, Mapping) and isinstance(saved.get("model"), Mapping):
        return dict(saved["model"]), dict(saved.get("peft") or {})
    run = _hydra_run_config(checkpoint)
    if run:
        log.info("export: hyper-parameters from %s", run["source"])
        return dict(run["model"]), dict(run["peft"])
    raise ExportError(
        f"{checkpoint}: no saved hyper-parameters (hyper_parameters.model) and no .hydra/config.yaml in "
        "the run folder above it; not an ifpo training checkpoint?"
    )


def _read_deepspeed_dir(checkpoint: Path) -> tuple[dict[str, torch.Tensor], Any]:
    """Consolidated weights and Lightning's client state (hyper-parameters) of a ZeRO checkpoint folder."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    if not (checkpoint / "latest").is_file():
        raise ExportError(
            f"{checkpoint}: a folder but not a complete DeepSpeed checkpoint (no 'latest' file naming its "
            f"tag)"
        )
    tag = (checkpoint / "latest").read_text().strip()
    model_states = sorted((checkpoint / tag).glob("*mp_rank_00_model_states.pt"))
    if not model_states:
        raise ExportError(f"{checkpoint / tag}: no *_model_states.pt shard (incomplete checkpoint?)")
    # Our own checkpoint: DeepSpeed's model-states file pickles its config objects, so it needs the
    # full unpickler (as DeepSpeed itself uses to load it).
    client = torch.load(model_states[0], map_location="cpu", weights_only=False)
    state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint), tag=tag)
    return state, client.get("hyper_parameters")


def _read_file(checkpoint: Path) -> tuple[dict[str, torch.Tensor], Any]:
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ExportError(f"{checkpoint}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ExportError(f"{checkpoint}: not a Lightning checkpoint (no 'state_dict')")
    return ckpt["state_dict"], ckpt.get("hyper_parameters")


def policy_weights(state: Mapping[str, torch.Tensor], checkpoint: Path) -> dict[str, torch.Tensor]:
    """The `policy.*` entries with the prefix removed (the reference, if saved, is dropped)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix(WRAPPER_PREFIX)
        if key.startswith(POLICY_PREFIX):
            out[key[len(POLICY_PREFIX) :]] = value
    if not out:
        prefixes = sorted({k.split(".", 1)[0] for k in state})
        raise ExportError(f"{checkpoint}: no '{POLICY_PREFIX}*' weights (found prefixes {prefixes})")
    return out


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Export a training checkpoint, single file or ZeRO-3 folder, full or LoRA (merged), to `out_dir`."""
    from ifpo.models.loading import load_tokenizer

    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise ExportError(f"{checkpoint}: checkpoint not found")
    state, saved = _read_deepspeed_dir(checkpoint) if checkpoint.is_dir() else _read_file(checkpoint)
    model_cfg, peft_cfg = _hyper_parameters(checkpoint, saved)
    weights = policy_weights(state, checkpoint)
    source = model_cfg.get("config") or model_cfg.get("name_or_path")
    if not source:
        raise ExportError(
            f"{checkpoint}: the saved model config names neither model.config nor model.name_or_path"
        )
    config = AutoConfig.from_pretrained(
        str(source), trust_remote_code=bool(model_cfg.get("trust_remote_code"))
    )
    dtype = DTYPES[str(model_cfg.get("dtype") or "float32")]
    tokenizer = load_tokenizer(model_cfg)
    return write_hf_folder(
        weights,
        config,
        peft_cfg,
        out_dir,
        tokenizer,
        dtype,
        _generation_config(str(source)),
        base_source=model_cfg.get("name_or_path"),
    )


def _generation_config(source: str) -> GenerationConfig | None:
    """The source folder's generation config (eos ids, sampling defaults), None where it has none."""
    try:
        return GenerationConfig.from_pretrained(source)
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ifpo.scale.export",
        description="Export a training checkpoint (a .ckpt file or a DeepSpeed ZeRO-3 checkpoint folder, "
        "full or LoRA) to a Hugging Face folder that from_pretrained loads.",
    )
    parser.add_argument(
        "checkpoint", help="a Lightning .ckpt or a ZeRO-3 checkpoint folder written by train.py"
    )
    parser.add_argument("out_dir", help="folder to write (safetensors, config, tokenizer)")
    args = parser.parse_args(argv)
    try:
        out = export_checkpoint(args.checkpoint, args.out_dir)
    except ExportError as err:
        print(f"error: {err}", flush=True)
        return 2
    print(f"exported to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
