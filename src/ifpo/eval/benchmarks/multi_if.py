"""Multi-IF (He et al., 2024): 3-turn multilingual IFEval; turn k is answered after the model's own
answers to turns 1..k-1; reported per turn and per language."""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path

from omegaconf import DictConfig

from ifpo.constraints import ConstraintFormatError
from ifpo.eval.benchmarks.base import (
    GetGenerator,
    generate_saved,
    load_turn_responses,
    register_benchmark,
    take,
)
from ifpo.eval.benchmarks.ifeval import KNOWN_IDS, unknown_ids_message
from ifpo.eval.report import BenchmarkResult
from ifpo.eval.rule_scoring import per_instruction_accuracy

log = logging.getLogger(__name__)


def _multi_if_csv(ecfg: DictConfig) -> Path:
    if ecfg.data:
        return Path(ecfg.data)
    import datasets

    # Materialise the hub split as CSV so one parser (with file/line/column errors) reads both.
    target = Path(ecfg.output_dir) / "multi_if_hub.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    datasets.load_dataset(ecfg.hub_name, split=ecfg.hub_split).to_csv(str(target), index=False)
    return target


def _check_multi_if_ids(path: Path, on_unknown: str, output_dir: str) -> tuple[Path, Counter[str]]:
    """Report every unknown id of the CSV at once; with skip, a copy without those rows is scored."""
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows, lines, line = [], [], reader.line_num + 1
        for row in reader:
            rows.append(row)
            lines.append(line)
            line = reader.line_num + 1
        fieldnames = reader.fieldnames or []
    unknown: dict[str, list[int]] = defaultdict(list)
    bad: set[int] = set()
    for line, row in zip(lines, rows):
        for k in (1, 2, 3):
            try:
                ids = json.loads(row.get(f"turn_{k}_instruction_id_list") or "[]")
            except json.JSONDecodeError:
                continue  # the real parser reports it with its column
            for kind in ids if isinstance(ids, list) else []:
                if isinstance(kind, str) and kind not in KNOWN_IDS["ifeval"]:
                    unknown[kind].append(line)
                    bad.add(line)
    if not unknown:
        return path, Counter()
    if on_unknown != "skip":
        raise ConstraintFormatError(
            unknown_ids_message(unknown, str(path), "Multi-IF"),
            field="turn_k_instruction_id_list",
            reason="unknown_kind",
        )
    log.warning("%s (skipped)", unknown_ids_message(unknown, str(path), "Multi-IF"))
    filtered = Path(output_dir) / "multi_if_known_ids.csv"
    filtered.parent.mkdir(parents=True, exist_ok=True)
    with filtered.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(r for line, r in zip(lines, rows) if line not in bad)
    return filtered, Counter({"unknown_instruction_id": len(bad)})


@register_benchmark("multi_if")
def multi_if(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval.multi_if import conversations_for_turn, load_multi_if_csv, score_multi_if, score_turn

    path, skipped = _check_multi_if_ids(_multi_if_csv(ecfg), ecfg.on_unknown, ecfg.output_dir)
    conversations = take(load_multi_if_csv(path), ecfg.limit)
    if ecfg.responses:
        responses = load_turn_responses(ecfg.responses)
    else:
        responses = {c.id: [] for c in conversations}
        # Turn k is generated from the model's own answers to turns 1..k-1.
        for k in range(1, max((len(c.turns) for c in conversations), default=0) + 1):
            batch = conversations_for_turn(conversations, k, responses)
            keys = [f"{cid}#{k}" for cid, _ in batch]
            texts = generate_saved(
                ecfg, get_generator, keys, [m for _, m in batch], "multi_if", f"Multi-IF turn {k}"
            )
            for (cid, _), key in zip(batch, keys):
                responses[cid].append(texts[key])
    report = score_multi_if(conversations, responses)
    examples = []
    for c in conversations:
        turns = []
        for instruction, answer in zip(c.turns, responses[c.id]):
            s, lo = score_turn(instruction, answer)  # Multi-IF's own checkers, as in the report
            turns.append(
                {
                    "instruction_id_list": s.instruction_id_list,
                    "follow_instruction_list_strict": s.follow_instruction_list,
                    "follow_instruction_list_loose": lo.follow_instruction_list,
                }
            )
        examples.append(
            {
                "key": c.id,
                "language": c.language,
                "prompts": [t.prompt for t in c.turns],
                "responses": responses[c.id][: len(c.turns)],
                "turns": turns,
            }
        )
    turn_scores = report.turn_scores()
    metrics: dict[str, float | int | None] = {f"turn_{k}": v for k, v in turn_scores.items()}
    metrics["average"] = sum(turn_scores.values()) / len(turn_scores) if turn_scores else None
    metrics["num_conversations"] = len(conversations)
    groups = {f"turn_{k}": r.summary() for k, r in report.per_turn.items()}
    groups.update(
        {
            f"language_{lang}": {f"turn_{k}": v for k, v in turns.items()}
            for lang, turns in report.language_scores().items()
        }
    )
    strict = [e for r in report.per_turn.values() for e in r.strict]
    loose = [e for r in report.per_turn.values() for e in r.loose]
    per_kind = {
        k: {"count": r.count, "strict": r.strict, "loose": r.loose}
        for k, r in per_instruction_accuracy(strict, loose).items()
    }
    return BenchmarkResult("multi_if", metrics, examples, per_kind, dict(skipped), groups)
