"""Check our scorers against the authors' own released judgements (no model, no judge calls).

    python -m ifpo.eval.release_check sysbench <SysBench>/output/gpt4o/gpt4o_analysis.xlsx ...
    python -m ifpo.eval.release_check cfbench <CFBench>/output/judge/gpt4o_eval.json ...

- SysBench: the ``详情`` sheet of an ``*_analysis.xlsx`` holds GPT-4o's per-turn verdicts
  (``评判结果``: ``"<id>. <type> | 是/否"`` lines). We rescore them with :func:`score_sysbench`
  and print the authors' CSR (sheet ``不同约束类型遵循``, total) and their ISR / SSR as their table
  scripts compute them from the sheet's ``是否可用`` column (``plot/tab3_align.py``, ``tab4_turn.py``).
  Reading .xlsx needs ``openpyxl`` (``pip install openpyxl``; not a dependency of the package).
- CFBench: each ``*_eval.json`` item holds the judge's raw answer and the authors' per-item
  ``judge_parsing`` / ``judge_metric``; we parse the raw answer our way and count agreements.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from ifpo.eval.cfbench import CFBenchItem, item_scores, judge_record, parse_strict
from ifpo.eval.sysbench import TURN_NUMBER, Criterion, SysBenchItem, score_sysbench


def _criteria(text: str, verdicts: str) -> tuple[tuple[Criterion, ...], dict[str, str]]:
    criteria = []
    for line in text.split("\n"):
        number, rest = line.split(". ", 1)
        content, kind = rest.rsplit(" | ", 1)
        criteria.append(Criterion(int(number), content, kind))
    results = {}
    for line in verdicts.split("\n"):
        number, rest = line.split(". ", 1)
        results[number] = rest.rsplit(" | ", 1)[1]
    return tuple(criteria), results


def sysbench(path: Path) -> dict[str, float]:
    """Our CSR/ISR/SSR over the authors' verdicts, next to the authors' figures (percent)."""
    import pandas as pd

    try:
        detail = pd.read_excel(path, sheet_name="详情")
        by_type = pd.read_excel(path, sheet_name="不同约束类型遵循", index_col=0)
    except ImportError as exc:
        raise SystemExit(f"reading {path} needs openpyxl: pip install openpyxl ({exc})") from None
    dialogues: dict[Any, list[Any]] = defaultdict(list)
    for _, row in detail.iterrows():
        dialogues[row["system_id"]].append(row)
    items, records = [], []
    for system_id, rows in dialogues.items():
        rows.sort(key=lambda r: int(r["round_index"]))
        parsed = [_criteria(r["评判细则"], r["评判结果"]) for r in rows]
        items.append(
            SysBenchItem(
                system_id,
                "",
                tuple(str(r["prompt"]) for r in rows),
                tuple(None for _ in rows),
                tuple(c for c, _ in parsed),
                tuple(str(r["alignment"]) for r in rows),
            )
        )
        records.append([{"verdicts": v} for _, v in parsed])
    ours = score_sysbench(items, records)
    usable = detail.sort_values(["system_id", "round_index"])["是否可用"].tolist()
    streaks = []
    for start in range(0, len(usable), TURN_NUMBER):  # plot/tab4_turn.py: usable turns in a row
        streak = 0
        while streak < TURN_NUMBER and usable[start + streak] > 0:
            streak += 1
        streaks.append(streak)
    return {
        "CSR": 100 * ours["CSR"],
        "CSR_authors": float(by_type.loc["遵循率", "total"]),
        "ISR": 100 * ours["ISR"],
        "ISR_authors": 100 * sum(usable) / len(usable),
        "SSR": 100 * ours["SSR"],
        "SSR_authors": 100 * sum(streaks) / (len(streaks) * TURN_NUMBER),
    }


def cfbench(path: Path) -> dict[str, float]:
    """How many items' parsing flag and CSR/ISR/PSR agree with the authors' own."""
    tasks = json.loads(path.read_text(encoding="utf-8"))
    agree = 0
    for task in tasks:
        item = CFBenchItem(
            task["idx"],
            task["prompt"],
            tuple(c[0] for c in task["criteria"]),
            tuple(c[1] for c in task["criteria"]),
        )
        raw = task["judge_response"]
        try:
            strict = parse_strict(raw, item.criteria)
        except ValueError:
            strict = None
        record = judge_record(item, raw, strict, None)
        same = record["parsing"] == task["judge_parsing"] and item_scores(record, item.priorities) == {
            k: float(v) for k, v in task["judge_metric"].items()
        }
        agree += same
    return {"items": len(tasks), "agree": agree}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", choices=["sysbench", "cfbench"])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    check = sysbench if args.benchmark == "sysbench" else cfbench
    for path in args.files:
        result = check(path)
        print(
            f"{path}: "
            + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items())
        )


if __name__ == "__main__":
    main()
