"""IFBench (Pyatkin et al., 2025): out-of-distribution verifiable constraints in the IFEval record format.

Scored with the official evaluator's semantics (``ifpo.eval.ifbench``): missing responses fail,
``<think>`` blocks are stripped, per-instruction resource errors are counted, never fatal.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from ifpo.eval.benchmarks.base import (
    GetGenerator,
    generate_saved,
    hub_rows,
    jsonl_rows,
    register_benchmark,
    take,
    user_turn,
)
from ifpo.eval.benchmarks.ifeval import load_instructions, rule_metrics
from ifpo.eval.ifbench import (
    RESPONSES_FILE,
    examples,
    load_ifbench_responses,
    score_ifbench_official,
    write_responses,
)
from ifpo.eval.report import BenchmarkResult, kind_table

log = logging.getLogger(__name__)


@register_benchmark("ifbench")
def ifbench(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    """Load the official file (or hub split), generate (saved as it goes) or read responses, write them,
    score."""
    if ecfg.data:
        source, rows = str(ecfg.data), list(jsonl_rows(ecfg.data))
    else:
        source, rows = f"{ecfg.hub_name}[{ecfg.hub_split}]", list(hub_rows(ecfg.hub_name, ecfg.hub_split))
    instructions, skipped = load_instructions(rows, source, "ifbench", ecfg.on_unknown)
    instructions = take(instructions, ecfg.limit)
    if ecfg.responses:
        responses = load_ifbench_responses(ecfg.responses)
    else:
        prompts = [i.prompt for i in instructions]
        responses = generate_saved(
            ecfg, get_generator, prompts, [user_turn(p) for p in prompts], "ifbench", "ifbench"
        )
        path = write_responses(
            Path(ecfg.output_dir) / RESPONSES_FILE, prompts, [responses[p] for p in prompts]
        )
        log.info("responses written to %s (official format) before scoring", path)
    scored = score_ifbench_official(
        instructions,
        responses,
        on_missing=ecfg.on_missing,
        on_resource_error=ecfg.get("on_resource_error", "fail"),
        think=bool(ecfg.get("strip_think", True)),
    )
    counters = scored.counters()
    if scored.resource_errors or scored.checker_errors:
        log.warning("IFBench: instructions that could not be checked here: %s", counters)
    metrics = rule_metrics(scored.report)
    metrics["num_prompts_in_file"] = len(instructions)
    metrics["missing_responses"] = len(scored.missing)
    metrics["resource_errors"] = sum(scored.resource_errors.values())
    metrics["checker_errors"] = sum(scored.checker_errors.values())
    skipped.update(counters)
    return BenchmarkResult(
        "ifbench",
        metrics,
        examples(instructions, scored, responses),
        kind_table(scored.report),
        dict(skipped),
    )
