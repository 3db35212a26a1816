"""Stage 1: training instructions with IFEval's constraint kinds, checked against IFEval; the eval
prompt file.

``instructions``: writes ``instructions.jsonl`` (IFEval's record format, what
``build.py builder.source=instructions`` and ``experiments.mini_if.sample`` read) from the
project's synthetic task generator (``ifpo.data.synthetic``, training templates, IFEval
instruction ids), and ``overlap.json``: every instruction's task text and its full rendered
prompt (system message with the constraints + task, as the sampler sends it) compared, after
case and whitespace folding, with each of IFEval's prompts. An instruction equal to an IFEval
prompt is never written: it is replaced by the next generated one and counted, so the training
set provably holds none of the benchmark's prompts. It also writes ``ifeval_eval.jsonl``, the
IFEval rows the study scores: all of them, or the keys listed in a committed keys file, in the
order of the released file.

``pick-keys``: a fixed, seeded subset of IFEval keys, one per line (how ``ifeval_keys.txt`` was made).

    python -m experiments.smol_ifeval.tasks instructions OUT_DIR --num 8 --seed 0 \
        --ifeval ../shared/data/ifeval/input_data.jsonl [--keys experiments/smol_ifeval/ifeval_keys.txt]
    python -m experiments.smol_ifeval.tasks pick-keys ../shared/data/ifeval/input_data.jsonl 100 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

from experiments.mini_if.tasks import instruction_record
from ifpo.builders.items import SourceItem, render_prompt
from ifpo.data.synthetic import generate_tasks

SYSTEM_PROMPT = "You are a helpful assistant."


def fold(text: str) -> str:
    """Case- and whitespace-folded text: what "equal to an IFEval prompt" compares."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def read_ifeval(path: Path) -> list[dict]:
    """The released IFEval rows; a missing file or a bad line is named with its line number."""
    if not path.is_file():
        raise SystemExit(
            f"{path}: IFEval's input_data.jsonl not found; the study trains on instructions checked "
            "against it and scores on it (set study.ifeval=<path to input_data.jsonl>)"
        )
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{line_no}: not JSON ({exc.msg})") from None
        for field in ("key", "prompt", "instruction_id_list", "kwargs"):
            if field not in row:
                raise SystemExit(f"{path}:{line_no}: field {field!r} missing")
        rows.append(row)
    return rows


def prompt_texts(record: dict) -> list[str]:
    """The texts of a training instruction compared with IFEval: the task, and the full rendered prompt."""
    from ifpo.constraints import parse_ifeval_record

    item = SourceItem(
        record["key"],
        [{"role": "user", "content": record["prompt"]}],
        parse_ifeval_record(record).constraints,
        SYSTEM_PROMPT,
    )
    rendered = "\n".join(m["content"] for m in render_prompt(item, item.constraints, "system"))
    return [record["prompt"], rendered]


def write_instructions(
    out_dir: Path, num: int, seed: int, ifeval: Path, min_constraints: int = 1, max_constraints: int = 3
) -> dict:
    """Write ``instructions.jsonl`` + ``overlap.json``; no written instruction equals an IFEval prompt."""
    ifeval_rows = read_ifeval(ifeval)
    benchmark = {fold(r["prompt"]): r["key"] for r in ifeval_rows}
    kept, equal, contained = [], [], 0
    # Generate a generous supply once (deterministic in seed); take the first `num` that pass.
    for task in generate_tasks(4 * num + 16, "train", seed, min_constraints, max_constraints):
        if len(kept) == num:
            break
        record = instruction_record(task)
        texts = [fold(t) for t in prompt_texts(record)]
        hits = [benchmark[t] for t in texts if t in benchmark]
        if hits:
            equal.append({"key": record["key"], "ifeval_keys": hits})
            continue
        contained += any(texts[0] in p for p in benchmark)
        kept.append(record)
    if len(kept) < num:
        raise SystemExit(f"only {len(kept)} of {num} generated instructions differ from every IFEval prompt")
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out_dir / "instructions.jsonl", kept)
    kinds = Counter(k for r in kept for k in r["instruction_id_list"])
    overlap = {
        "checked": True,
        "ifeval_file": str(ifeval),
        "ifeval_prompts": len(ifeval_rows),
        "instructions": len(kept),
        "texts_compared_per_instruction": 2,
        "equal_to_an_ifeval_prompt_in_written_file": 0,
        "generated_equal_and_replaced": equal,
        "task_text_contained_in_an_ifeval_prompt": contained,
        "rule": "case- and whitespace-folded equality of the task text and of the full rendered prompt",
    }
    # Re-check the file as written (the guarantee the README states), not the loop's bookkeeping.
    written = [json.loads(line) for line in (out_dir / "instructions.jsonl").read_text().splitlines()]
    overlap["equal_to_an_ifeval_prompt_in_written_file"] = sum(
        fold(t) in benchmark for r in written for t in prompt_texts(r)
    )
    (out_dir / "overlap.json").write_text(json.dumps(overlap, indent=2) + "\n")
    stats = {
        "seed": seed,
        "instructions": len(kept),
        "constraints_per_instruction": round(sum(kinds.values()) / len(kept), 3),
        "constraint_kinds": dict(sorted(kinds.items())),
    }
    (out_dir / "tasks_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return {**stats, "overlap": {k: v for k, v in overlap.items() if k != "generated_equal_and_replaced"}}


def read_keys(path: Path) -> list[int]:
    """A keys file: one IFEval key per line; '#' starts a comment."""
    keys = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.isdigit():
            raise SystemExit(f"{path}:{line_no}: not an IFEval key (an integer): {text!r}")
        keys.append(int(text))
    if len(set(keys)) != len(keys):
        raise SystemExit(f"{path}: duplicate keys {sorted(k for k, n in Counter(keys).items() if n > 1)}")
    return keys


def write_eval_file(out: Path, ifeval: Path, keys_file: Path | None) -> int:
    """The IFEval rows to score (all, or the listed keys in the released order); returns their count."""
    rows = read_ifeval(ifeval)
    if keys_file is not None:
        keys = read_keys(keys_file)
        known = {r["key"] for r in rows}
        missing = [k for k in keys if k not in known]
        if missing:
            raise SystemExit(f"{keys_file}: keys not in {ifeval}: {missing[:10]}")
        wanted = set(keys)
        rows = [r for r in rows if r["key"] in wanted]
    _write_jsonl(out, rows)
    return len(rows)


def pick_keys(ifeval: Path, count: int, seed: int) -> list[int]:
    keys = [r["key"] for r in read_ifeval(ifeval)]
    return sorted(random.Random(seed).sample(keys, count))


def _write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    tmp.replace(path)  # atomic: a killed stage never leaves a half file that looks finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("instructions", help="training instructions + overlap check + the IFEval eval file")
    ins.add_argument("out_dir", type=Path)
    ins.add_argument("--num", type=int, required=True)
    ins.add_argument("--seed", type=int, default=0)
    ins.add_argument("--ifeval", type=Path, required=True)
    ins.add_argument("--keys", type=Path, default=None, help="IFEval keys to score (default: all prompts)")
    ins.add_argument("--min-constraints", type=int, default=1)
    ins.add_argument("--max-constraints", type=int, default=3)
    pick = sub.add_parser("pick-keys", help="print a seeded subset of IFEval keys, one per line")
    pick.add_argument("ifeval", type=Path)
    pick.add_argument("count", type=int)
    pick.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "pick-keys":
        print("\n".join(map(str, pick_keys(args.ifeval, args.count, args.seed))))
        return
    stats = write_instructions(
        args.out_dir, args.num, args.seed, args.ifeval, args.min_constraints, args.max_constraints
    )
    stats["ifeval_eval_prompts"] = write_eval_file(args.out_dir / "ifeval_eval.jsonl", args.ifeval, args.keys)
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
