"""Export the trained policy as a Hugging Face folder (safetensors + config + tokenizer).

Two ways in, one way out:

* in-process (:func:`export_hf`, used by `export.at_end=true`): parameters are gathered one at a
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
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerBase

from ifpo.scale.lora import lora_config, peft_enabled

log = logging.getLogger(__name__)

POLICY_PREFIX = "policy."
WRAPPER_PREFIX = "_forward_module."  # Lightning < 2.1 DeepSpeed checkpoints
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ExportError(ValueError):
    """A checkpoint cannot be exported: missing, unreadable, or not an ifpo training checkpoint."""


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


# -- in-process -----------------------------------------------------------------------------
def gathered_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full CPU copies of every parameter and persistent buffer on rank 0 ({} on other ranks)."""
    partitioned = any(hasattr(p, "ds_id") for p in model.parameters())
    state: dict[str, torch.Tensor] = {}
    rank0 = _rank() == 0
    for name, parameter in model.named_parameters():
        if partitioned:
            import deepspeed

            with deepspeed.zero.GatheredParameters([parameter], modifier_rank=None):
                if rank0:
                    state[name] = parameter.data.detach().cpu().clone()
        elif rank0:
            state[name] = parameter.detach().cpu().clone()
    if rank0:
        keys = set(model.state_dict().keys())
        state.update(
            {n: b.detach().cpu().clone() for n, b in model.named_buffers() if n in keys and n not in state}
        )
    return state


def export_hf(
    policy: torch.nn.Module,
    out_dir: str | Path,
    tokenizer: PreTrainedTokenizerBase | None,
    peft_cfg: Mapping[str, Any] | None = None,
) -> Path | None:
    """Write `policy` (LoRA merged) to `out_dir`; every rank must call it (the gathers are collective).

    Returns the folder on rank 0, None elsewhere.
    """
    state = gathered_state_dict(policy)
    if _rank() != 0:
        return None
    base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
    dtype = next(iter(state.values())).dtype if state else torch.float32
    return write_hf_folder(state, base.config, peft_cfg, out_dir, tokenizer, dtype, base.generation_config)


def write_hf_folder(
    state: Mapping[str, torch.Tensor],
    config: Any,
    peft_cfg: Mapping[str, Any] | None,
    out_dir: str | Path,
    tokenizer: PreTrainedTokenizerBase | None,
    dtype: torch.dtype,
    generation_config: GenerationConfig | None = None,
    base_source: str | None = None,
) -> Path:
    """Load a policy state dict (PEFT-wrapped names when LoRA is on) into a meta skeleton, merge, save.

    A LoRA checkpoint of a pretrained base holds only the adapters (the frozen base is never
    saved): then the base is loaded from ``base_source`` (the run's ``model.name_or_path``) and
    only the adapter weights must come from ``state``. ``generation_config`` (the source model's:
    its eos id list stops generation) travels along.
    """
    # PEFT names a wrapped linear's frozen weight "...base_layer.weight": none saved = adapters only.
    adapters_only = peft_enabled(peft_cfg) and not any(".base_layer." in k for k in state)
    if adapters_only:
        if not base_source:
            raise ExportError("export: an adapter-only LoRA checkpoint needs the base model's model.name_or_path")
        skeleton: Any = AutoModelForCausalLM.from_pretrained(base_source, dtype=dtype)
    else:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tied = set(getattr(skeleton, "_tied_weights_keys", None) or [])
    tied_map = getattr(skeleton, "_tied_weights_keys", None)
    tied_pairs = dict(tied_map) if isinstance(tied_map, dict) else {}  # target -> source (transformers 5)
    if peft_enabled(peft_cfg):
        from peft import get_peft_model

        skeleton = get_peft_model(skeleton, lora_config(peft_cfg))
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    result = skeleton.load_state_dict(state, strict=False, assign=not adapters_only)
    missing = [k for k in result.missing_keys if not any(k.endswith(t) for t in tied)]
    if adapters_only:
        missing = [k for k in missing if "lora_" in k]  # the rest came from base_source
    if missing or result.unexpected_keys:
        raise ExportError(
            f"export: state dict does not match the model (missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})"
        )
    base = skeleton.get_base_model() if hasattr(skeleton, "get_base_model") else skeleton
    for target, source in tied_pairs.items():
        # load_state_dict(assign=True) replaced the source Parameter and left the tied target on the
        # meta skeleton's old one. Re-tie before merging: PEFT's merge sees untied embeddings and
        # sets tie_word_embeddings=False, and the saved folder would then lack lm_head.weight.
        if base.get_parameter(target).is_meta:
            owner, _, leaf = target.rpartition(".")
            setattr(base.get_submodule(owner), leaf, base.get_parameter(source))
    if peft_enabled(peft_cfg):
        skeleton = skeleton.merge_and_unload()  # W <- W + (alpha / r) * B @ A, adapters removed
    skeleton.tie_weights()
    meta = [n for n, p in skeleton.named_parameters() if p.is_meta]
    if meta:
        raise ExportError(f"export: parameters never received weights: {meta[:5]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if generation_config is not None:
        skeleton.generation_config = generation_config
    skeleton.save_pretrained(out, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


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
                    "model": OmegaConf.to_container(cfg.model, resolve=True),
                    "peft": OmegaConf.to_container(cfg.get("peft") or {}, resolve=True),
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
            f"{checkpoint}: a folder but not a complete DeepSpeed checkpoint (no 'latest' file naming its tag)"
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
        raise ExportError(f"{checkpoint}: the saved model config names neither model.config nor model.name_or_path")
    config = AutoConfig.from_pretrained(str(source), trust_remote_code=bool(model_cfg.get("trust_remote_code")))
    dtype = DTYPES[str(model_cfg.get("dtype") or "float32")]
    tokenizer = load_tokenizer(model_cfg)
    return write_hf_folder(weights, config, peft_cfg, out_dir, tokenizer, dtype, _generation_config(str(source)),
                           base_source=model_cfg.get("name_or_path"))


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
    parser.add_argument("checkpoint", help="a Lightning .ckpt or a ZeRO-3 checkpoint folder written by train.py")
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
