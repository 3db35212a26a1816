"""Load the policy to evaluate: a Hugging Face folder/hub id, or a training Lightning ``.ckpt``.

A training checkpoint stores the policy under ``state_dict["policy.*"]`` (see
``ifpo.training.module.PreferenceModule``) and, in its hyperparameters, the ``model``
config training built it from; the model is rebuilt from that config (or the one given)
and the weights are then loaded strictly so a
mismatched architecture fails loudly instead of evaluating a half-random model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ifpo.models.loading import build_causal_lm, load_tokenizer
from ifpo.models.lora import apply_lora

log = logging.getLogger(__name__)

POLICY_PREFIX = "policy."


class CheckpointError(ValueError):
    """A training checkpoint is missing, unreadable, or does not fit the configured model."""


def _read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        # Lightning checkpoints hold only tensors and plain containers here (PreferenceModule
        # saves its hparams as plain dicts), so the safe unpickler is enough.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path}: not a Lightning checkpoint (top level is {type(checkpoint).__name__})"
        )
    return checkpoint


def checkpoint_model_config(path: str | Path) -> dict[str, Any] | None:
    """The ``model`` config the training run was built from (saved in its hyperparameters), if any."""
    hparams = _read(path).get("hyper_parameters")
    model = hparams.get("model") if isinstance(hparams, dict) else None
    return dict(model) if isinstance(model, dict) else None


def checkpoint_peft_config(path: str | Path) -> dict[str, Any] | None:
    """The ``peft`` config of the training run (LoRA settings), if it used adapters."""
    hparams = _read(path).get("hyper_parameters")
    peft = hparams.get("peft") if isinstance(hparams, dict) else None
    return dict(peft) if isinstance(peft, dict) and peft.get("enabled") else None


def _load_lora(model: PreTrainedModel, peft_cfg: dict[str, Any], state: dict[str, torch.Tensor],
               checkpoint: str | Path) -> PreTrainedModel:
    """Base from the model config + the checkpoint's adapters, merged. LoRA checkpoints hold only
    the adapters (the frozen base is never saved), so every adapter tensor must be there and any
    base tensor present (older checkpoints) must fit too."""
    peft_model = apply_lora(model, peft_cfg)
    try:
        result = peft_model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{checkpoint}: adapter weights do not fit model + peft config: {exc}") from exc
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys or not any("lora_" in k for k in state):
        raise CheckpointError(
            f"{checkpoint}: LoRA checkpoint does not fit the model + peft config (missing adapters "
            f"{missing[:5]}, unexpected {result.unexpected_keys[:5]}); evaluate with the model the run "
            f"trained"
        )
    log.info("loaded %d LoRA tensors from %s onto the base model and merged them", len(state), checkpoint)
    return peft_model.merge_and_unload()


def policy_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The policy weights of a Lightning checkpoint, with the ``policy.`` prefix removed."""
    checkpoint = _read(path)
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no 'state_dict' (is this a Lightning checkpoint?)")
    policy = {k[len(POLICY_PREFIX) :]: v for k, v in state.items() if k.startswith(POLICY_PREFIX)}
    if not policy:
        prefixes = sorted({k.split(".", 1)[0] for k in state})
        raise CheckpointError(
            f"{path}: no '{POLICY_PREFIX}*' weights in state_dict (found prefixes {prefixes})"
        )
    return policy


def load_policy(
    model_cfg: Any, checkpoint: str | Path | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) from ``model_cfg``; with ``checkpoint``, its policy weights replace the model's."""
    tokenizer = load_tokenizer(model_cfg)
    model = build_causal_lm(model_cfg)
    if checkpoint is not None:
        state = policy_state_dict(checkpoint)
        peft_cfg = checkpoint_peft_config(checkpoint)
        if peft_cfg is not None:
            model = _load_lora(model, peft_cfg, state, checkpoint)
            model.eval()
            return model, tokenizer
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches raise even with strict=False
            raise CheckpointError(f"{checkpoint}: policy weights do not fit model config: {exc}") from exc
        # Tied weights (e.g. lm_head = embed_tokens) may legitimately be absent from the file.
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        tied = set(getattr(base, "_tied_weights_keys", None) or [])
        missing = [k for k in result.missing_keys if not any(k == t or k.endswith("." + t) for t in tied)]
        if missing or result.unexpected_keys:
            raise CheckpointError(
                f"{checkpoint}: policy weights do not fit model config "
                f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {result.unexpected_keys[:5]}"
                f"{'...' if len(result.unexpected_keys) > 5 else ''}); "
                "evaluate with the same model=... the run trained"
            )
        log.info("loaded %d policy tensors from %s", len(state), checkpoint)
    model.eval()
    return model, tokenizer
