"""IFEval (and the IFEval-format IFBench): rule-scored strict/loose accuracy per prompt and instruction.

Rows come from the hub dataset (``eval.hub_name`` / ``eval.hub_split``) or a local JSONL
(``eval.data``); instruction ids the checkers do not know are reported together, or their prompts
skipped and counted with ``eval.on_unknown=skip``.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig

from ifpo.constraints import (
    IFBENCH_KIND_IDS,
    IFEVAL_KIND_IDS,
    ConstraintFormatError,
    Instruction,
    parse_ifeval_record,
)
from ifpo.eval.benchmarks.base import (
    GetGenerator,
    generate_saved,
    hub_rows,
    jsonl_rows,
    register_benchmark,
    take,
    user_turn,
)
from ifpo.eval.report import BenchmarkResult, kind_table
from ifpo.eval.rule_scoring import ScoreReport, load_responses_jsonl, score_ifbench, score_ifeval

log = logging.getLogger(__name__)

KNOWN_IDS = {"ifeval": frozenset(IFEVAL_KIND_IDS), "ifbench": frozenset(IFBENCH_KIND_IDS)}


def find_unknown_ids(rows: Iterable[tuple[int, Any]], known: frozenset[str]) -> dict[str, list[int]]:
    """Instruction id -> lines using it, for every id not in ``known`` (rows with no id list ignored)."""
    unknown: dict[str, list[int]] = defaultdict(list)
    for line, record in rows:
        ids = record.get("instruction_id_list") if isinstance(record, Mapping) else None
        for kind in ids if isinstance(ids, list) else []:
            if isinstance(kind, str) and kind not in known:
                unknown[kind].append(line)
    return dict(unknown)


def unknown_ids_message(unknown: Mapping[str, list[int]], source: str, benchmark: str) -> str:
    listed = "; ".join(
        f"{kind!r} (line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines[:5]))}"
        f"{', ...' if len(lines) > 5 else ''})"
        for kind, lines in sorted(unknown.items())
    )
    return (
        f"{source}: {len(unknown)} unknown {benchmark} instruction id(s): {listed}. "
        "Fix the data, or set eval.on_unknown=skip to score without those prompts"
    )


def load_instructions(
    rows: list[tuple[int, Any]], source: str, benchmark: str, on_unknown: str
) -> tuple[list[Instruction], Counter[str]]:
    """Parse IFEval-format rows; unknown ids are reported together (or their prompts skipped and counted)."""
    if on_unknown not in ("raise", "skip"):
        raise ValueError(f"eval.on_unknown must be 'raise' or 'skip', got {on_unknown!r}")
    known = KNOWN_IDS[benchmark]
    unknown = find_unknown_ids(rows, known)
    if unknown and on_unknown == "raise":
        raise ConstraintFormatError(
            unknown_ids_message(unknown, source, benchmark),
            field="instruction_id_list",
            reason="unknown_kind",
        )
    bad_lines = {line for lines in unknown.values() for line in lines}
    skipped: Counter[str] = Counter()
    instructions = []
    for line, record in rows:
        if line in bad_lines:
            skipped["unknown_instruction_id"] += 1
            continue
        instructions.append(parse_ifeval_record(record, source=source, line=line))
    if skipped:
        log.warning("%s", unknown_ids_message(unknown, source, benchmark) + " (skipped)")
    return instructions, skipped


def rule_benchmark(ecfg: DictConfig, get_generator: GetGenerator, benchmark: str) -> BenchmarkResult:
    if ecfg.data:
        source, rows = str(ecfg.data), list(jsonl_rows(ecfg.data))
    else:
        source, rows = f"{ecfg.hub_name}[{ecfg.hub_split}]", list(hub_rows(ecfg.hub_name, ecfg.hub_split))
    instructions, skipped = load_instructions(rows, source, benchmark, ecfg.on_unknown)
    instructions = take(instructions, ecfg.limit)
    if ecfg.responses:
        responses = load_responses_jsonl(ecfg.responses)
    else:
        prompts = [i.prompt for i in instructions]
        responses = generate_saved(
            ecfg, get_generator, prompts, [user_turn(p) for p in prompts], benchmark, benchmark
        )
    scorer = score_ifeval if benchmark == "ifeval" else score_ifbench
    report = scorer(instructions, responses, on_missing=ecfg.on_missing)
    skipped.update(report.skipped)
    keys = {i.prompt: i.id for i in instructions}
    examples = [
        {
            "key": keys.get(s.prompt),
            "prompt": s.prompt,
            "response": s.response,
            "instruction_id_list": s.instruction_id_list,
            "follow_instruction_list_strict": s.follow_instruction_list,
            "follow_instruction_list_loose": lo.follow_instruction_list,
            "follow_all_instructions_strict": s.follow_all_instructions,
            "follow_all_instructions_loose": lo.follow_all_instructions,
        }
        for s, lo in zip(report.strict, report.loose)
    ]
    return BenchmarkResult(benchmark, rule_metrics(report), examples, kind_table(report), dict(skipped))


def rule_metrics(report: ScoreReport) -> dict[str, float | int | None]:
    return {
        **report.summary(),
        "num_prompts": len(report.strict),
        "num_instructions": sum(len(e.follow_instruction_list) for e in report.strict),
    }


@register_benchmark("ifeval")
def ifeval(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    return rule_benchmark(ecfg, get_generator, "ifeval")
