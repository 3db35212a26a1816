"""TRACE (the IOPO authors' benchmark): the released file, the authors' judge template, IF-S / IF-M.
The format, prompt and metrics live in :mod:`ifpo.eval.trace_bench`."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from ifpo.eval.benchmarks.base import (
    GetGenerator,
    generate_saved,
    load_keyed_responses,
    register_benchmark,
    take,
)
from ifpo.eval.benchmarks.judging import (
    judge_key,
    judge_params,
    judged_examples,
    require_data,
    run_judge,
    saved_responses,
    skip_counts,
)
from ifpo.eval.report import BenchmarkResult


@register_benchmark("trace")
def trace_benchmark(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval import trace_bench as trace
    from ifpo.eval.judged import ask_judge

    loaded = trace.load_trace(require_data(ecfg, "TRACE"), on_bad_row=ecfg.on_bad_row)
    items = take(list(loaded), ecfg.limit)
    keys = [item.id for item in items]
    if ecfg.responses:
        responses = saved_responses(ecfg, keys, load_keyed_responses)
    else:  # the file's messages as they are: the system message is part of the benchmark
        responses = generate_saved(
            ecfg, get_generator, keys, [list(i.messages) for i in items], "trace", "TRACE"
        )
    skipped = skip_counts(loaded, keys, responses)
    items = [i for i in items if i.id in responses]
    keys = [i.id for i in items]
    params = judge_params(ecfg)

    def judge_one(client: Any, n: int) -> dict:
        item = items[n]
        raw, overall, problem = ask_judge(
            client,
            trace.judge_messages(item, responses[item.id]),
            trace.parse_overall,
            params=params,
            reask=bool(ecfg.judge_reask),
        )
        return trace.judge_record(raw, overall, problem)

    judge_keys = [judge_key(ecfg, k, responses[k]) for k in keys]
    records = run_judge(ecfg, "trace_judge", judge_keys, judge_one, "TRACE")
    metrics = trace.score_trace(
        items, records, pass_threshold=float(ecfg.pass_threshold), on_failed=ecfg.on_failed
    )
    examples = judged_examples(keys, "response", responses, records)
    return BenchmarkResult("trace", metrics, examples, skipped=skipped)
