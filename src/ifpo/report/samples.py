"""Greedy answers of a group's final policy to the first prompts of that run's own validation data.

The validation records are the ones the run validated on: `data.val_files` when the run had them,
otherwise the synthetic set its config describes. The reference column is the record's preferred
response (`chosen`, or `y1` for IOPO quads).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ifpo.config.plain import to_plain
from ifpo.report.collect import Run

log = logging.getLogger(__name__)


@dataclass
class Sample:
    prompt: str
    reference: str
    response: str


def _last_text(messages: list[dict[str, str]]) -> str:
    return messages[-1]["content"] if messages else ""


def _conversation(messages: list[dict[str, str]]) -> str:
    """Every turn of the prompt (constraints often sit in the system message)."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def validation_records(config: Any, limit: int) -> tuple[list[dict[str, Any]], str]:
    """(first `limit` validated records, where they came from) of a run's validation data."""
    from ifpo.data.sources import ensure_synthetic_files, load_file_records
    from ifpo.io.errors import SkipCounter

    data = config.data
    kind = data.get("kind") or ("quad" if config.loss.name == "iopo" else "pair")
    if data.get("val_files"):
        path = Path(data.val_files[0])
    elif data.get("synthetic") is not None and data.synthetic.get("enabled", False):
        _, path = ensure_synthetic_files(data.synthetic)
    else:
        return [], ""
    distinct: dict[str, dict[str, Any]] = {}  # one sample per prompt (a prompt can have several pairs)
    for record in load_file_records(path, kind, "skip", SkipCounter()):
        prompt = record["prompt"] if "prompt" in record else record["x1"]
        distinct.setdefault(repr(prompt), record)
        if len(distinct) == limit:
            break
    return list(distinct.values()), str(path)


def run_config(run: Run) -> Any:
    """The run's saved (unresolved) config, with the two roots its paths interpolate from filled in."""
    import rootutils

    config = OmegaConf.load(run.folder / ".hydra" / "config.yaml")
    root = os.environ.get("IFPO_ROOT")
    if not root:
        try:  # run folders live under <repository>/outputs/
            root = str(rootutils.find_root(run.folder, indicator=".project-root"))
        except FileNotFoundError:
            root = os.getcwd()
    config.paths.root_dir, config.paths.output_dir = root, str(run.folder)
    return config


def group_samples(run: Run, limit: int, max_new_tokens: int) -> tuple[list[Sample], str]:
    """Samples of `run`'s last checkpoint, and a note saying what was used (or why nothing was)."""
    from ifpo.models.checkpoint import checkpoint_model_config, load_policy
    from ifpo.models.generation import GenerationSettings, HFGenerator

    ckpt = run.folder / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        return [], f"no {ckpt.relative_to(run.folder.parent)}"
    config = run_config(run)
    records, source = validation_records(config, limit)
    if not records:
        return [], "the run had no validation records"
    model_cfg = checkpoint_model_config(ckpt) or to_plain(config.model)
    model, tokenizer = load_policy(OmegaConf.create(model_cfg), ckpt)
    prompts = [r["prompt"] if "prompt" in r else r["x1"] for r in records]
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=len(prompts), show_progress=False)
    texts = HFGenerator(model, tokenizer, settings).generate(prompts, desc="report samples")
    samples = [Sample(_conversation(p), _last_text(r.get("chosen") or r.get("y1") or []), t)
               for p, r, t in zip(prompts, records, texts)]
    return samples, f"{ckpt.relative_to(run.folder.parent)} on {source}"
