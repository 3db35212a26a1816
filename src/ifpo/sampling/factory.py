"""Build the configured sampler (the ``sampler`` config group): a registry keyed by ``backend``.

Samplers are built the way the project builds every part it picks by name (loss heads,
benchmarks, builders, strategies): a dict from the name to a factory, whose keys are the allowed
values in the error. `_target_` stays for Lightning's and Hydra's own objects (README,
"Architecture").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ifpo.sampling.base import Sampler
from ifpo.sampling.file import ResponsesFileSampler
from ifpo.sampling.hf import HFSampler, SamplingSettings, load_sampling_model
from ifpo.sampling.synthetic_writer import SyntheticWriterSampler


def _file(cfg: Any, model_cfg: Any) -> Sampler:
    if not cfg.get("responses"):
        raise ValueError("sampler=file needs sampler.responses=PATH (JSONL of {id, responses})")
    return ResponsesFileSampler(cfg.responses)


def _synthetic(cfg: Any, model_cfg: Any) -> Sampler:
    return SyntheticWriterSampler(float(cfg.get("satisfy_prob", 0.5)))


def _settings(cfg: Any) -> SamplingSettings:
    return SamplingSettings(
        max_new_tokens=int(cfg.max_new_tokens),
        temperature=float(cfg.temperature),
        top_p=float(cfg.top_p),
        do_sample=bool(cfg.get("do_sample", True)),
        batch_size=int(cfg.batch_size),
    )


def _vllm(cfg: Any, model_cfg: Any) -> Sampler:  # pragma: no cover - GPU only
    from ifpo.models.loading import folder_eos_token_ids, load_tokenizer, model_source
    from ifpo.sampling.vllm_backend import VLLMSampler

    settings = _settings(cfg)
    checkpoint = cfg.get("checkpoint")
    source = checkpoint or (model_source(model_cfg) if model_cfg is not None else None)
    if not source:
        raise ValueError("sampler=vllm needs a Hugging Face folder: sampler.checkpoint or model.name_or_path")
    # The one chat template and every EOS id, as the hf backend and training use them.
    override = model_cfg.get("chat_template") if model_cfg is not None else None
    tokenizer = load_tokenizer(
        {"tokenizer": str(checkpoint), "chat_template": override} if checkpoint else model_cfg
    )
    return VLLMSampler(
        str(source),
        settings,
        chat_template=tokenizer.chat_template,
        stop_token_ids=folder_eos_token_ids(str(source), tokenizer),
    )


def _hf(cfg: Any, model_cfg: Any) -> Sampler:
    settings = _settings(cfg)
    if model_cfg is None:
        raise ValueError("sampler=hf needs a model config")
    model, tokenizer = load_sampling_model(model_cfg, cfg.get("checkpoint"))
    if cfg.get("device"):
        model.to(cfg.device)
    return HFSampler(model, tokenizer, settings)


SAMPLERS: dict[str, Callable[[Any, Any], Sampler]] = {
    "hf": _hf,
    "vllm": _vllm,
    "file": _file,
    "synthetic": _synthetic,
}
BACKENDS = tuple(SAMPLERS)


def build_sampler(cfg: Any, model_cfg: Any = None) -> Sampler:
    """``cfg.backend``: hf | vllm | file (``cfg.responses``) | synthetic (``cfg.satisfy_prob``)."""
    factory = SAMPLERS.get(cfg.backend) if isinstance(cfg.backend, str) else None
    if factory is None:
        raise ValueError(f"sampler.backend={cfg.backend!r}; allowed: {', '.join(SAMPLERS)}")
    return factory(cfg, model_cfg)
