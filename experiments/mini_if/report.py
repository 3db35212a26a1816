"""Stage 7: the study's tables and plots, regenerated from the run folders alone.

Reads ``<out>/data`` (task, sample and build statistics), ``<out>/pref/*`` (each training job's
``metrics.json``), ``<out>/eval/<model>/summary.json`` (held-out scores) and
``<out>/stage_times.json``; writes ``results.json``, ``results.md`` and PNG plots to the
results folder and, with ``--readme``, replaces the README's block between the
``<!-- mini_if:results:begin -->`` / ``end`` markers with ``results.md``. Also re-checks, by
rule, that every RPO chosen response satisfies all constraints of its rewritten instruction and
that every IOPO quad (edited or reversed x2) holds all four relations.

    python -m experiments.mini_if.report outputs/mini_if --results-dir experiments/mini_if/results
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from ifpo.constraints import Constraint, parse_ifeval_record

BEGIN, END = "<!-- mini_if:results:begin -->", "<!-- mini_if:results:end -->"
METRICS = ("prompt_strict", "instruction_strict", "prompt_loose", "instruction_loose")
LABELS = {
    "sft": "SFT (start)",
    "dpo": "DPO",
    "rpo": "RPO",
    "rpo_g0": "RPO, gamma=0",
    "iopo": "IOPO",
    "iopo_rev": "IOPO (x2 by reversal)",
}
# Built files (data/built/<kind>.jsonl) and what one record is; iopo_rev only when that method ran.
BUILT_UNITS = {"dpo": "pairs", "rpo": "pairs", "iopo": "quads", "iopo_rev": "quads"}
QUAD_RELATIONS = ("y1_meets_x1", "y2_meets_x2", "y1_fails_x2", "y2_fails_x1")


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else value[-1]["content"]


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def sample_stats(data: Path) -> dict[str, Any]:
    """How often the SFT model's samples meet each constraint (the raw material of every builder)."""
    items = {r["key"]: parse_ifeval_record(r) for r in _jsonl(data / "pref_instructions.jsonl")}
    met_all = total = 0
    per_kind: Counter = Counter()
    per_kind_met: Counter = Counter()
    distinct_vectors = []
    for row in _jsonl(data / "samples.jsonl"):
        constraints = items[row["id"]].constraints
        vectors = set()
        for response in row["responses"]:
            vector = tuple(bool(c.check(response)) for c in constraints)
            vectors.add(vector)
            total += 1
            met_all += all(vector)
            for c, ok in zip(constraints, vector):
                per_kind[c.kind] += 1
                per_kind_met[c.kind] += ok
        distinct_vectors.append(len(vectors))
    return {
        "responses": total,
        "meet_all_constraints": met_all / max(1, total),
        "mean_distinct_judgement_vectors": statistics.fmean(distinct_vectors) if distinct_vectors else 0.0,
        "per_kind_satisfaction": {k: per_kind_met[k] / per_kind[k] for k in sorted(per_kind)},
    }


def rpo_check(path: Path) -> dict[str, int]:
    """Every RPO chosen response must meet all (rule-checkable) constraints of its rewritten instruction."""
    out = Counter()
    for record in _jsonl(path):
        constraints = [Constraint(c["kind"], c["kwargs"]) for c in record["meta"]["constraints"]]
        chosen, rejected = _text(record["chosen"]), _text(record["rejected"])
        out["pairs"] += 1
        out["chosen_meets_all"] += all(c.check(chosen) for c in constraints if c.checkable)
        out["rejected_fails_exactly_margin"] += (
            sum(not c.check(rejected) for c in constraints) == record["margin"]
        )
    return dict(out)


def quad_check(path: Path) -> dict[str, int]:
    """How many IOPO quads hold each relation: y1 meets x1, y2 meets x2, y1 fails x2, y2 fails x1."""
    out = Counter({"quads": 0, **dict.fromkeys(QUAD_RELATIONS, 0)})

    def meets(constraints: list[dict], response: str) -> bool:
        parsed = [Constraint(c["kind"], c["kwargs"]) for c in constraints]
        return all(c.check(response) for c in parsed if c.checkable)

    for record in _jsonl(path):
        x1, x2 = record["meta"]["constraints_x1"], record["meta"]["constraints_x2"]
        y1, y2 = _text(record["y1"]), _text(record["y2"])
        out["quads"] += 1
        out["y1_meets_x1"] += meets(x1, y1)
        out["y2_meets_x2"] += meets(x2, y2)
        out["y1_fails_x2"] += not meets(x2, y1)
        out["y2_fails_x1"] += not meets(x1, y2)
    return dict(out)


def built_kinds(methods: list[str]) -> list[str]:
    """The built files a report over ``methods`` reads (older runs have no iopo_rev file)."""
    return [k for k in BUILT_UNITS if k != "iopo_rev" or "iopo_rev" in methods]


def build_stats(built: Path, kinds: list[str]) -> dict[str, Any]:
    return {k: json.loads((built / f"{k}.jsonl.stats.json").read_text()) for k in kinds}


def collect(out: Path, methods: list[str], seeds: list[int]) -> dict[str, Any]:
    evals: dict[str, dict[str, Any]] = {}
    for folder in sorted((out / "eval").glob("*/summary.json")):
        evals[folder.parent.name] = json.loads(folder.read_text())
    train: dict[str, dict[str, float]] = {}
    for overrides in sorted((out / "pref").glob("*/.hydra/overrides.yaml")):
        import yaml

        values = {
            k.lstrip("+"): v for k, v in (o.split("=", 1) for o in yaml.safe_load(overrides.read_text()))
        }
        metrics_file = overrides.parent.parent / "metrics.json"
        if metrics_file.exists():
            name = f"{values['experiment'].removeprefix('mini_if_')}_s{values['seed']}"
            train[name] = json.loads(metrics_file.read_text())
    rows, kinds = {}, sorted({k for e in evals.values() for k in e["per_kind"]})
    for method in methods:
        names = ["sft"] if method == "sft" else [f"{method}_s{s}" for s in seeds]
        found = [evals[n] for n in names if n in evals]
        row: dict[str, Any] = {
            "runs": len(found),
            "per_seed": {n: evals[n]["metrics"] for n in names if n in evals},
        }
        for metric in METRICS:
            row[metric] = mean_std([e["metrics"][metric] for e in found])
        row["per_kind_strict"] = {
            k: mean_std([e["per_kind"][k]["strict"] for e in found if k in e["per_kind"]])[0] for k in kinds
        }
        accs = [_final(train.get(n, {}).get("metrics", {}), ("train/rewards/accuracies",)) for n in names]
        row["train_reward_accuracy"] = mean_std([a for a in accs if a is not None])
        rows[method] = row
    return {
        "rows": rows,
        "kinds": kinds,
        "train_metrics": train,
        "eval_examples": next(iter(evals.values()))["num_examples"] if evals else 0,
    }


def _final(metrics: dict, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        for name, value in metrics.items():
            if name.endswith(key) and isinstance(value, (int, float)):
                return float(value)
    return None


def _fmt(pair: tuple[float, float], pct: bool = True) -> str:
    m, s = pair
    if math.isnan(m):
        return "n/a"
    return f"{100 * m:.1f} ± {100 * s:.1f}" if pct else f"{m:.3f} ± {s:.3f}"


def plots(results: dict[str, Any], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, names = results["rows"], list(results["rows"])
    files = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, metric in zip(axes, ("prompt_strict", "instruction_strict")):
        means = [100 * rows[n][metric][0] for n in names]
        errs = [100 * rows[n][metric][1] for n in names]
        ax.bar(range(len(names)), means, yerr=errs, capsize=4, color="#8fb3d9")
        for i, n in enumerate(names):
            points = [100 * m[metric] for m in rows[n]["per_seed"].values()]
            ax.scatter([i] * len(points), points, color="black", s=10, zorder=3)
        ax.set_xticks(range(len(names)), [LABELS.get(n, n) for n in names], rotation=20)
        ax.set_ylabel(f"{metric.replace('_', '-level ')} accuracy (%)")
        ax.set_title(metric.replace("_", " "))
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=110)
    plt.close(fig)
    files.append("accuracy.png")

    kinds = results["kinds"]
    fig, ax = plt.subplots(figsize=(11, 3.8))
    width = 0.8 / max(1, len(names))
    for j, n in enumerate(names):
        vals = [100 * (rows[n]["per_kind_strict"].get(k) or 0.0) for k in kinds]
        ax.bar([i + j * width for i in range(len(kinds))], vals, width, label=LABELS.get(n, n))
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(kinds))], [k.split(":")[1] for k in kinds], rotation=25
    )
    ax.set_ylabel("strict accuracy (%)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_by_kind.png", dpi=110)
    plt.close(fig)
    files.append("accuracy_by_kind.png")

    hist = results["data"]["builds"]["rpo"]["margin_histogram"]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([int(k) for k in hist], list(hist.values()), color="#d99a8f")
    ax.set_xlabel("RPO margin g (constraints the two responses disagree on)")
    ax.set_ylabel("pairs")
    fig.tight_layout()
    fig.savefig(out_dir / "rpo_margins.png", dpi=110)
    plt.close(fig)
    files.append("rpo_margins.png")
    return files


def markdown(results: dict[str, Any]) -> str:
    rows, data = results["rows"], results["data"]
    b, t = data["builds"], data["tasks"]
    lines = [
        f"_Generated by `python -m experiments.mini_if.report` from the run folders of "
        f"`{results['out_dir']}`._",
        "",
    ]
    lines += [
        "### Data",
        "",
        (
            f"- {t['sft_tasks']} SFT instructions, {t['pref_instructions']} preference instructions "
            f"({t['constraints_per_instruction']:.2f} constraints each on average), held-out: "
            f"{results['eval_examples']} instructions from disjoint templates."
        ),
        (
            f"- SFT model samples: {data['samples']['responses']} responses; "
            f"{100 * data['samples']['meet_all_constraints']:.1f}% meet all their constraints; "
            f"{data['samples']['mean_distinct_judgement_vectors']:.2f} distinct judgement vectors per "
            f"instruction."
        ),
        "",
        "| builder | records | skipped (by reason) | margin histogram |",
        "|---|---|---|---|",
    ]
    for kind, s in b.items():
        skipped = ", ".join(f"{r}: {n}" for r, n in s["skipped"].items()) or "none"
        # IOPO by reversal keeps each quad with the number of constraints it reversed.
        hist = ", ".join(f"g={k}: {n}" for k, n in s["margin_histogram"].items()) or "-"
        label = LABELS[kind] if kind == "iopo_rev" else kind.upper()
        lines.append(f"| {label} | {s['kept']} {BUILT_UNITS[kind]} | {skipped} | {hist} |")
    if "iopo_rev" in b:
        lines += [
            "",
            "For IOPO (x2 by reversal) `g` is the number of x1's constraints reversed into x2 (those y2 "
            "fails); `reverse_candidate:<reason>` counts candidate y2s whose quad a rule re-check rejected.",
        ]
    c = data["rpo_check"]
    lines += [
        "",
        (
            "RPO check (rule checkers, re-run by the report): "
            f"{c.get('chosen_meets_all', 0)}/{c.get('pairs', 0)} "
            f"chosen responses satisfy every constraint of their rewritten instruction; "
            f"{c.get('rejected_fails_exactly_margin', 0)}/{c.get('pairs', 0)} rejected responses fail "
            f"exactly "
            f"`margin` of them."
        ),
    ]
    for kind, q in data.get("quad_check", {}).items():
        held = ", ".join(f"{r.replace('_', ' ')} {q[r]}/{q['quads']}" for r in QUAD_RELATIONS)
        lines += ["", f"{LABELS[kind]} quad check (rule checkers, re-run by the report): {held}."]
    lines.append("")
    lines += [
        "### Held-out results",
        "",
        (
            f"Strict accuracy (%) on {results['eval_examples']} held-out instructions, mean ± standard "
            f"deviation "
            f"over seeds {', '.join(map(str, results['seeds']))} (SFT: one model)."
        ),
        "",
        (
            "| model | runs | prompt-level strict | instruction-level strict | prompt-level loose | "
            "instruction-level loose | final train reward accuracy |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        acc = "-" if name == "sft" else _fmt(row["train_reward_accuracy"])
        lines.append(
            f"| {LABELS.get(name, name)} | {row['runs']} | {_fmt(row['prompt_strict'])} | "
            f"{_fmt(row['instruction_strict'])} | {_fmt(row['prompt_loose'])} | "
            f"{_fmt(row['instruction_loose'])} | {acc} |"
        )
    lines += [
        "",
        "Per constraint kind (strict, %, mean over seeds):",
        "",
        "| kind | " + " | ".join(LABELS.get(n, n) for n in rows) + " |",
        "|---" * (len(rows) + 1) + "|",
    ]
    for kind in results["kinds"]:
        cells = [rows[n]["per_kind_strict"].get(kind) for n in rows]
        lines.append(
            f"| {kind} | "
            + " | ".join("n/a" if v is None or math.isnan(v) else f"{100 * v:.1f}" for v in cells)
            + " |"
        )
    lines += [
        "",
        "![accuracy](results/accuracy.png)",
        "![by kind](results/accuracy_by_kind.png)",
        "![RPO margins](results/rpo_margins.png)",
        "",
        "### Stage times (this run)",
        "",
        (
            "Wall clock as measured on the machine that ran it (shared with other jobs), and the CPU seconds "
            "(user + system) of the stage's processes, which do not depend on what else was running."
        ),
        "",
        "| stage | wall s | CPU s |",
        "|---|---|---|",
    ]
    cpu = results.get("stage_cpu", {})
    for stage, seconds in results["stage_times"].items():
        lines.append(f"| {stage} | {seconds:.0f} | {cpu.get(stage, float('nan')):.0f} |")
    lines.append(f"| **total** | {sum(results['stage_times'].values()):.0f} | {sum(cpu.values()):.0f} |")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, block: str) -> None:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{block}{END}{tail}", encoding="utf-8")


def report(
    out: Path, results_dir: Path, methods: list[str], seeds: list[int], readme: Path | None = None
) -> dict:
    results_dir.mkdir(parents=True, exist_ok=True)
    results = collect(out, methods, seeds)
    results.update(
        out_dir=out.name, seeds=seeds, stage_times=json.loads((out / "stage_times.json").read_text())
    )
    cpu_file = out / "stage_cpu.json"
    results["stage_cpu"] = json.loads(cpu_file.read_text()) if cpu_file.exists() else {}
    results["data"] = {
        "tasks": json.loads((out / "data/tasks_stats.json").read_text()),
        "samples": sample_stats(out / "data"),
        "builds": build_stats(out / "data/built", built_kinds(methods)),
        "rpo_check": rpo_check(out / "data/built/rpo.jsonl"),
        "quad_check": {
            k: quad_check(out / f"data/built/{k}.jsonl") for k in built_kinds(methods) if k.startswith("iopo")
        },
    }
    missing = [m for m, row in results["rows"].items() if row["runs"] == 0]
    if missing:
        raise SystemExit(f"no evaluated model for {missing} under {out / 'eval'}")
    results["plots"] = plots(results, results_dir)
    (results_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    block = markdown(results)
    (results_dir / "results.md").write_text(block, encoding="utf-8")
    if readme is not None:
        update_readme(readme, block)
    print(block)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--methods", default="sft,dpo,rpo,rpo_g0,iopo,iopo_rev")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--readme", type=Path, default=None)
    args = parser.parse_args()
    report(
        args.out,
        args.results_dir,
        args.methods.split(","),
        [int(s) for s in args.seeds.split(",")],
        args.readme,
    )


if __name__ == "__main__":
    main()
