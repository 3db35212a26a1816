"""The project's synthetic held-out tasks (templates disjoint from training), rule-scored per kind."""

from __future__ import annotations

from omegaconf import DictConfig

from ifpo.eval.benchmarks.base import (
    GetGenerator,
    generate_saved,
    load_keyed_responses,
    register_benchmark,
    take,
)
from ifpo.eval.benchmarks.ifeval import rule_metrics
from ifpo.eval.report import BenchmarkResult, kind_table


@register_benchmark("synthetic")
def synthetic(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval.synthetic_heldout import heldout_examples, score_heldout

    items = take(heldout_examples(int(ecfg.num_examples), int(ecfg.seed)), ecfg.limit)
    if ecfg.responses:
        responses = load_keyed_responses(ecfg.responses)
    else:
        keys = [str(e.key) for e in items]
        conversations = [e.messages for e in items]
        texts = generate_saved(ecfg, get_generator, keys, conversations, "synthetic", "synthetic heldout")
        responses = {e.key: texts[str(e.key)] for e in items}
    report = score_heldout(items, responses)
    examples = [
        {
            "key": e.key,
            "messages": e.messages,
            "response": s.response,
            "instruction_id_list": s.instruction_id_list,
            "kwargs": [dict(c.kwargs) for c in e.instruction.constraints],
            "follow_instruction_list_strict": s.follow_instruction_list,
            "follow_instruction_list_loose": lo.follow_instruction_list,
        }
        for e, s, lo in zip(items, report.strict, report.loose)
    ]
    return BenchmarkResult("synthetic", rule_metrics(report), examples, kind_table(report))
