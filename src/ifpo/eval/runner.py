"""The body of ``eval.py``: pick the benchmark adapter, give it a lazily built generator, write results.

The adapters (one module per benchmark under :mod:`ifpo.eval.benchmarks`, behind a registry like
the loss heads) load their data, generate or read saved responses, score and return a
:class:`~ifpo.eval.report.BenchmarkResult`; this module only builds the generator the
config asks for, dispatches, and writes and logs the result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig

from ifpo.config.wandb_env import prepare_wandb_env
from ifpo.eval.benchmarks import get_benchmark, registered_benchmarks
from ifpo.eval.report import BenchmarkResult, log_to_loggers, print_table, write_results
from ifpo.models.generation import GenerationSettings, Generator, HFGenerator, VLLMGenerator

log = logging.getLogger(__name__)


def generation_settings(gen_cfg: Mapping[str, Any]) -> GenerationSettings:
    keys = GenerationSettings.__dataclass_fields__
    return GenerationSettings(**{k: v for k, v in gen_cfg.items() if k in keys})


def build_generator(cfg: DictConfig) -> Generator:
    """The configured backend around the configured policy (a training checkpoint included)."""
    from ifpo.models.checkpoint import checkpoint_model_config, load_policy

    gen_cfg = cfg.eval.generation
    settings = generation_settings(gen_cfg)
    if gen_cfg.backend == "vllm":
        if cfg.eval.checkpoint:
            raise ValueError(
                "backend=vllm reads HF folders only; evaluate a .ckpt with backend=hf "
                "or export its policy with save_pretrained first"
            )
        from ifpo.models.loading import folder_eos_token_ids, load_tokenizer, model_source

        source = model_source(cfg.model)  # converts a GGUF model.gguf_file once, like the hf backend
        tokenizer = load_tokenizer(cfg.model)  # the one chat template (model.chat_template applied)
        return VLLMGenerator(
            str(source),
            settings,
            dtype=str(cfg.model.dtype),
            chat_template=tokenizer.chat_template,
            stop_token_ids=folder_eos_token_ids(str(source), tokenizer),
        )
    if gen_cfg.backend != "hf":
        raise ValueError(f"eval.generation.backend must be 'hf' or 'vllm', got {gen_cfg.backend!r}")
    model_cfg: Any = cfg.get("model")
    if cfg.eval.checkpoint and cfg.eval.get("model_from_checkpoint", True):
        # The architecture and tokenizer the run trained with, saved in the checkpoint's hparams.
        model_cfg = checkpoint_model_config(cfg.eval.checkpoint) or model_cfg
    model, tokenizer = load_policy(model_cfg, cfg.eval.checkpoint)
    device = gen_cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    return HFGenerator(model.to(device), tokenizer, settings)


# ------------------------------------------------------------------------------- entry
def evaluate(cfg: DictConfig) -> BenchmarkResult:
    """Run the benchmark ``cfg.eval`` names and write its results folder; returns the result."""
    if "eval" not in cfg or cfg.eval is None or not cfg.eval.get("benchmark"):
        raise ValueError(
            f"choose a benchmark: python eval.py +eval=NAME with NAME in {registered_benchmarks()}"
        )
    ecfg = cfg.eval
    adapter = get_benchmark(ecfg.benchmark)
    torch.manual_seed(int(cfg.get("seed", 0)))
    generator: list[Generator] = []

    def get_generator() -> Generator:  # built on first use: rescoring saved responses loads no model
        if not generator:
            generator.append(build_generator(cfg))
        return generator[0]

    result = adapter(ecfg, get_generator)
    paths = write_results(result, ecfg.output_dir, chart=bool(ecfg.chart))
    print_table(result)
    log.info("results: %s", ", ".join(str(p) for p in paths.values()))
    if cfg.get("logger"):
        from ifpo.training.pipeline import instantiate_group

        prepare_wandb_env()
        log_to_loggers(result, instantiate_group(cfg.logger), paths)
    return result
