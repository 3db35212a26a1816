"""Stage 7: the study's tables: IFEval accuracy per model, paired bootstrap intervals, per-kind
results, timings.

Reads ``<out>/eval/<model>/examples.jsonl`` (eval.py's per-prompt record: strict and loose
``follow_instruction_list``) for every model, and writes ``results.json`` + ``results.md``
(optionally also into the README block between the markers below).

The interval of a model's difference from the start model is a paired bootstrap over prompts:
each resample draws prompts with replacement and scores *both* models on the same draw, so the
interval reflects the prompt sample, not the models' separate noise. Instruction-level accuracy is
re-computed on each draw as followed / total instructions of the drawn prompts (a cluster
bootstrap: instructions of one prompt move together). numpy does the resampling
(a multinomial count per prompt and draw), percentiles give the 95% interval.

    python -m experiments.smol_ifeval.report OUT_DIR --results-dir DIR --models start,dpo_s1,... \
        [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

BEGIN = "<!-- smol_ifeval results: begin (written by experiments/smol_ifeval/report.py) -->"
END = "<!-- smol_ifeval results: end -->"
METRICS = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")
LABELS = {
    "start": "SmolLM2-135M-Instruct (start)",
    "dpo": "DPO",
    "rpo": "RPO (paper margin form)",
    "rpo_code": "RPO (authors' code form)",
    "iopo": "IOPO (by reversal)",
}


def label(name: str) -> str:
    method, _, seed = name.rpartition("_s")
    if name == "start" or not seed.isdigit():
        return LABELS.get(name, name)
    return f"{LABELS.get(method, method)}, seed {seed}"


def load_examples(path: Path) -> pd.DataFrame:
    """One row per prompt: key, per-instruction strict/loose lists and their counts."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{path}: no scored prompts")
    frame = pd.DataFrame(rows)
    frame["n"] = frame["instruction_id_list"].map(len)
    for mode in ("strict", "loose"):
        frame[f"followed_{mode}"] = frame[f"follow_instruction_list_{mode}"].map(sum)
        frame[f"all_{mode}"] = frame[f"follow_all_instructions_{mode}"].astype(float)
    return frame.set_index("key", drop=False)


def point_metrics(frame: pd.DataFrame) -> dict[str, float]:
    return {
        "prompt_strict": float(frame["all_strict"].mean()),
        "prompt_loose": float(frame["all_loose"].mean()),
        "instruction_strict": float(frame["followed_strict"].sum() / frame["n"].sum()),
        "instruction_loose": float(frame["followed_loose"].sum() / frame["n"].sum()),
    }


def _per_prompt(frame: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(numerator, denominator) per prompt whose ratio of sums is ``metric``."""
    level, mode = metric.split("_")
    if level == "prompt":
        return frame[f"all_{mode}"].to_numpy(float), np.ones(len(frame))
    return frame[f"followed_{mode}"].to_numpy(float), frame["n"].to_numpy(float)


def paired_bootstrap(model: pd.DataFrame, start: pd.DataFrame, draws: int, seed: int) -> dict[str, dict]:
    """Difference model - start per metric: point estimate and 95% percentile interval."""
    if list(model.index) != list(start.index):
        raise SystemExit("paired bootstrap needs the same prompts in the same order for both models")
    counts = np.random.default_rng(seed).multinomial(
        len(model), np.full(len(model), 1 / len(model)), size=draws
    )
    out = {}
    for metric in METRICS:
        num_m, den = _per_prompt(model, metric)
        num_s, _ = _per_prompt(start, metric)
        totals = counts @ den
        diffs = (counts @ num_m - counts @ num_s) / totals
        low, high = np.percentile(diffs, [2.5, 97.5])
        point = float((num_m.sum() - num_s.sum()) / den.sum())
        out[metric] = {"diff": point, "low": float(low), "high": float(high)}
    return out


def per_kind(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Instruction-level strict accuracy per IFEval instruction id and model (n = instructions)."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    counts: dict[str, int] = {}
    for name, frame in frames.items():
        followed: dict[str, list[bool]] = defaultdict(list)
        for ids, flags in zip(frame["instruction_id_list"], frame["follow_instruction_list_strict"]):
            for kind, flag in zip(ids, flags):
                followed[kind].append(bool(flag))
        for kind, flags in followed.items():
            table[kind][name] = sum(flags) / len(flags)
            counts[kind] = len(flags)
    result = pd.DataFrame(table).T.sort_index()
    result.insert(0, "n", pd.Series(counts))
    return result


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def data_summary(out: Path) -> dict:
    built = {k: _read_json(out / f"data/built/{k}.jsonl.stats.json") for k in ("dpo", "rpo", "iopo")}
    overlap = _read_json(out / "data/overlap.json")
    overlap.pop("generated_equal_and_replaced", None)
    return {
        "tasks": _read_json(out / "data/tasks_stats.json"),
        "samples": _read_json(out / "data/samples.stats.json"),
        "overlap": overlap,
        "built": {k: {"kept": v.get("kept"), "skipped": v.get("skipped")} for k, v in built.items()},
    }


def timings(out: Path) -> list[dict]:
    wall, cpu = _read_json(out / "stage_times.json"), _read_json(out / "stage_cpu.json")
    return [{"stage": s, "wall_s": wall[s], "cpu_s": cpu.get(s)} for s in sorted(wall)]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _signed(x: float) -> str:
    return f"{100 * x:+.1f}"


def markdown(results: dict) -> str:
    rows, diffs = results["rows"], results["differences"]
    n = results["prompts"]
    lines = [
        f"IFEval, {n} prompts ({results['prompt_set']}); accuracy in %. "
        "Differences from the start model with paired-bootstrap 95% intervals "
        f"({results['bootstrap']} draws).",
        "",
        "| model | prompt strict | prompt loose | instr. strict | instr. loose |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {label(name)} | " + " | ".join(_pct(row[m]) for m in METRICS) + " |")
    lines += [
        "",
        "| model - start | " + " | ".join(m.replace("_", " ") for m in METRICS) + " |",
        "|---|---|---|---|---|",
    ]
    for name, d in diffs.items():
        cells = [
            f"{_signed(d[m]['diff'])} [{_signed(d[m]['low'])}, {_signed(d[m]['high'])}]" for m in METRICS
        ]
        lines.append(f"| {label(name)} | " + " | ".join(cells) + " |")
    lines += ["", "Instruction-level strict accuracy (%) per IFEval instruction id (n = instructions):", ""]
    kinds = results["per_kind"]
    names = list(rows)
    lines += [
        "| instruction id | n | " + " | ".join(label(x) for x in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for kind, row in kinds.items():
        lines.append(
            f"| {kind} | {row['n']} | "
            + " | ".join(_pct(row[x]) if row.get(x) is not None else "" for x in names)
            + " |"
        )
    data = results["data"]
    built = ", ".join(f"{k} {v['kept']}" for k, v in data["built"].items())
    overlap = data["overlap"]
    lines += [
        "",
        f"Training data: {data['tasks'].get('instructions')} instructions, "
        f"{data['samples'].get('model_samples_per_instruction')} samples each; records kept: {built}. "
        f"IFEval overlap check: {overlap.get('equal_to_an_ifeval_prompt_in_written_file')} of "
        f"{overlap.get('instructions')} instructions equal one of "
        f"{overlap.get('ifeval_prompts')} IFEval prompts.",
        "",
        "| stage | wall s | CPU s |",
        "|---|---|---|",
    ]
    lines += [f"| {t['stage']} | {t['wall_s']} | {t['cpu_s']} |" for t in results["timings"]]
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, block: str) -> None:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN!r} ... {END!r} markers to replace")
    head, rest = text.split(BEGIN, 1)
    readme.write_text(f"{head}{BEGIN}\n{block}{END}{rest.split(END, 1)[1]}")


def build_results(out: Path, models: list[str], draws: int, seed: int) -> dict:
    frames = {}
    for name in models:
        path = out / "eval" / name / "examples.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path}: missing (did stage 6_eval run for {name!r}?)")
        frames[name] = load_examples(path)
    start = frames[models[0]]
    kinds = per_kind(frames)
    return {
        "prompts": len(start),
        "prompt_set": "all of input_data.jsonl" if len(start) == 541 else "the keys in the study's keys file",
        "keys": [int(k) for k in start.index],
        "bootstrap": draws,
        "rows": {name: point_metrics(frame) for name, frame in frames.items()},
        "differences": {name: paired_bootstrap(frames[name], start, draws, seed) for name in models[1:]},
        "per_kind": {
            k: {c: (None if pd.isna(v) else (int(v) if c == "n" else float(v))) for c, v in row.items()}
            for k, row in kinds.iterrows()
        },
        "data": data_summary(out),
        "timings": timings(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--models", required=True, help="comma-separated; the first is the start model")
    parser.add_argument("--bootstrap", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--readme", type=Path, default=None)
    args = parser.parse_args()
    results = build_results(args.out_dir, args.models.split(","), args.bootstrap, args.seed)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    block = markdown(results)
    (args.results_dir / "results.md").write_text(block)
    if args.readme:
        update_readme(args.readme, block)
    print(block)


if __name__ == "__main__":
    main()
