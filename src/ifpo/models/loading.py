"""Build the policy/reference models and the tokenizer from the `model` config group.

`model.name_or_path` loads pretrained weights with `from_pretrained` (local folder or hub
id); `model.config` instead builds a randomly initialised model from an architecture
config, which is how the embedded tiny default and the tests run without any download.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ifpo.models.attn_choice import resolve_attn_implementation

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# model.chat_template=<name> picks assets/chat_templates/<name>.jinja; anything else is a file path.
CHAT_TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "assets" / "chat_templates"


class ChatTemplateError(ValueError):
    """The tokenizer has no chat template and model.chat_template names none (or a missing one)."""


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    return cfg.get(key, default) if isinstance(cfg, Mapping) else getattr(cfg, key, default)


def model_source(model_cfg: Any, name_or_path: str | None = None) -> str | None:
    """model.name_or_path, converted from model.gguf_file first (once) when that is set."""
    source = name_or_path or _get(model_cfg, "name_or_path")
    gguf_file = _get(model_cfg, "gguf_file")
    if gguf_file and not name_or_path:
        if not source:
            raise ValueError(
                "model.gguf_file needs model.name_or_path: the folder the conversion is cached in"
            )
        from ifpo.models.gguf import ensure_converted

        source = str(ensure_converted(gguf_file, _get(model_cfg, "gguf_package"), source))
    return source


def named_chat_templates() -> list[str]:
    return sorted(p.stem for p in CHAT_TEMPLATES_DIR.glob("*.jinja"))


def resolve_chat_template(spec: str) -> str:
    """model.chat_template: a file path (a .jinja template) or the name of a bundled template."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path.read_text()
    named = CHAT_TEMPLATES_DIR / f"{spec}.jinja"
    if "/" not in spec and named.is_file():
        return named.read_text()
    raise ChatTemplateError(
        f"model.chat_template={spec!r} is neither a file nor a bundled template "
        f"(bundled: {', '.join(named_chat_templates())})"
    )


def require_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    """Every prompt (train, build, sample, eval) is a chat rendered by one template: no template, no run."""
    if not tokenizer.chat_template:
        raise ChatTemplateError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat template: set model.chat_template to a "
            f".jinja file or a bundled name ({', '.join(named_chat_templates())}), or use an instruct "
            "model's tokenizer (model.tokenizer)"
        )


def load_tokenizer(model_cfg: Any) -> PreTrainedTokenizerBase:
    """The tokenizer named by model.tokenizer, else the one saved with model.name_or_path.

    Its chat template (model.chat_template overrides the saved one) is the single template
    training, building, sampling and evaluation all render with; one must exist.
    """
    source = _get(model_cfg, "tokenizer") or model_source(model_cfg)
    if not source:
        raise ValueError("set model.tokenizer or model.name_or_path: no tokenizer to load")
    tokenizer = AutoTokenizer.from_pretrained(
        source, trust_remote_code=bool(_get(model_cfg, "trust_remote_code"))
    )
    override = _get(model_cfg, "chat_template")
    if override:
        tokenizer.chat_template = resolve_chat_template(str(override))
    require_chat_template(tokenizer)
    if tokenizer.pad_token_id is None:
        # Pad positions are masked out of attention and loss, so EOS is a safe pad token.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_causal_lm(model_cfg: Any, name_or_path: str | None = None) -> PreTrainedModel:
    """Load pretrained weights, or random-init from `model.config` when no weights are named."""
    dtype = DTYPES[_get(model_cfg, "dtype", "float32")]
    attn = resolve_attn_implementation(
        _get(model_cfg, "attn_implementation", "sdpa"), _get(model_cfg, "dtype", "float32")
    )
    trust = bool(_get(model_cfg, "trust_remote_code"))
    source = model_source(model_cfg, name_or_path)
    if source:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, attn_implementation=attn, trust_remote_code=trust
        )
    else:
        arch = _get(model_cfg, "config")
        if not arch:
            raise ValueError("set model.name_or_path (pretrained) or model.config (random init)")
        config = AutoConfig.from_pretrained(arch, trust_remote_code=trust)
        model = AutoModelForCausalLM.from_config(
            config, dtype=dtype, attn_implementation=attn, trust_remote_code=trust
        )
    if _get(model_cfg, "gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id generation must stop on: the generation config's EOS list plus the tokenizer's EOS.

    Chat models end a turn with a token other than the tokenizer's EOS (Llama-3 `<|eot_id|>`,
    Gemma `<end_of_turn>`); their generation_config lists it, so stopping only on
    `tokenizer.eos_token_id` would run every answer to max_new_tokens.
    """
    config = getattr(model, "generation_config", None)
    configured = getattr(config, "eos_token_id", None) if config is not None else None
    if configured is None:
        configured = getattr(getattr(model, "config", None), "eos_token_id", None)
    ids = list(configured) if isinstance(configured, (list, tuple)) else [configured]
    ids.append(tokenizer.eos_token_id)
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def folder_eos_token_ids(source: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """`eos_token_ids` for a model that is not loaded here (vLLM): read from its folder's configs."""
    from types import SimpleNamespace

    from transformers import GenerationConfig

    try:
        generation = GenerationConfig.from_pretrained(source)
    except OSError:  # no generation_config.json: the model config's eos_token_id decides
        generation = None
    config = AutoConfig.from_pretrained(source)
    return eos_token_ids(SimpleNamespace(generation_config=generation, config=config), tokenizer)  # type: ignore[arg-type]


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Eval mode, no gradients: what a reference model must be."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the decoder that returns hidden states, the LM head), unwrapping PEFT if present."""
    if hasattr(model, "get_base_model"):  # peft.PeftModel
        model = model.get_base_model()
    head = model.get_output_embeddings()
    decoder = getattr(model, model.base_model_prefix, None)
    if head is None or decoder is None or decoder is model:
        raise TypeError(
            f"{type(model).__name__} does not expose a decoder and an LM head (needed for log-probs)"
        )
    return decoder, head
