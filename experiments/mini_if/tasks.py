"""Stage 1: the study's synthetic instructions, written as files the project's entry points read.

From one list of training tasks (``ifpo.data.synthetic``, training templates only) it writes

* ``sft.jsonl``: pair records for ``train.py data=files loss=sft`` (SFT learns the chosen side).
  The chosen response satisfies *every* constraint (the generator's writer, verified by the
  rule checkers); ``rejected`` violates them all — the SFT head never reads it, but the pair
  format needs one that differs. Prompts alternate between the two system-message layouts the
  project uses (the builders' ``render_prompt`` and the held-out eval's ``Task.messages``), so
  neither later stage meets a layout the SFT model never saw;
* ``pref_instructions.jsonl``: IFEval-format instructions (``key``, ``prompt``,
  ``instruction_id_list``, ``kwargs``) for ``build.py builder.source=instructions``; these
  tasks are disjoint from the SFT ones. At real scale this file is replaced by your own
  instruction set (same format).

Held-out instructions are not written: ``eval.py +eval=synthetic`` generates them from the
disjoint held-out templates.

    python -m experiments.mini_if.tasks OUT_DIR --sft-tasks 600 --pref-tasks 200 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from ifpo.builders.items import SourceItem, render_prompt
from ifpo.data.synthetic import Task, generate_tasks, write_response


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def sft_record(task: Task, rng: random.Random, system_prompt: str) -> dict:
    """A pair whose chosen answer meets every constraint of ``task`` (rejected: none of them)."""
    specs = task.specs
    if rng.random() < 0.5:
        item = SourceItem(
            task.uid,
            [{"role": "user", "content": task.task}],
            tuple(s.constraint for s in specs),
            system_prompt,
        )
        prompt = render_prompt(item, item.constraints, "system")
    else:
        prompt = task.messages(None, rng)
    chosen = write_response(task.topic, specs, [True] * len(specs), rng)
    rejected = write_response(task.topic, specs, [False] * len(specs), rng)
    return {
        "prompt": prompt,
        "chosen": _assistant(chosen),
        "rejected": _assistant(rejected),
        "meta": {"source": task.uid, "constraints": [s.as_record() for s in specs]},
    }


def instruction_record(task: Task) -> dict:
    """IFEval's record format, what ``builder.source=instructions`` and real instruction sets use."""
    return {
        "key": task.uid,
        "prompt": task.task,
        "instruction_id_list": [s.kind for s in task.specs],
        "kwargs": [dict(s.kwargs) for s in task.specs],
    }


def _write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    tmp.replace(path)  # atomic: a killed stage never leaves a half file that looks finished


def write_tasks(
    out_dir: Path,
    sft_tasks: int,
    pref_tasks: int,
    seed: int,
    system_prompt: str = "You are a helpful assistant.",
) -> dict:
    """Write both files and return their statistics (also saved as ``tasks_stats.json``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = generate_tasks(sft_tasks + pref_tasks, "train", seed)
    sft, pref = tasks[:sft_tasks], tasks[sft_tasks:]
    rng = random.Random(f"mini_if-sft-{seed}")
    _write_jsonl(out_dir / "sft.jsonl", [sft_record(t, rng, system_prompt) for t in sft])
    _write_jsonl(out_dir / "pref_instructions.jsonl", [instruction_record(t) for t in pref])
    kinds: dict[str, int] = {}
    for task in pref:
        for spec in task.specs:
            kinds[spec.kind] = kinds.get(spec.kind, 0) + 1
    stats = {
        "seed": seed,
        "sft_tasks": len(sft),
        "pref_instructions": len(pref),
        "constraints_per_instruction": sum(len(t.specs) for t in pref) / max(1, len(pref)),
        "pref_constraint_kinds": dict(sorted(kinds.items())),
    }
    (out_dir / "tasks_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--sft-tasks", type=int, required=True)
    parser.add_argument("--pref-tasks", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(write_tasks(args.out_dir, args.sft_tasks, args.pref_tasks, args.seed), indent=2))


if __name__ == "__main__":
    main()
