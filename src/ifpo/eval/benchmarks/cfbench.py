"""CFBench: the released file (its empty-prompt item included), the authors' judge prompt and
fallbacks, CSR / ISR / PSR. Format, prompt and metrics: :mod:`ifpo.eval.cfbench`."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from ifpo.eval.benchmarks.base import (
    GetGenerator,
    generate_saved,
    load_keyed_responses,
    register_benchmark,
    take,
    user_turn,
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


@register_benchmark("cfbench")
def cfbench_benchmark(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval import cfbench
    from ifpo.eval.judged import ask_judge

    loaded = cfbench.load_cfbench(require_data(ecfg, "CFBench"), on_bad_row=ecfg.on_bad_row)
    items = take(list(loaded), ecfg.limit)
    keys = [str(item.id) for item in items]
    if ecfg.responses:
        responses = saved_responses(ecfg, keys, load_keyed_responses)
    else:  # the prompt alone, as the authors' inference sends it (item 810's empty prompt included)
        conversations = [user_turn(i.prompt) for i in items]
        responses = generate_saved(ecfg, get_generator, keys, conversations, "cfbench", "CFBench")
    skipped = skip_counts(loaded, keys, responses)
    items = [i for i in items if str(i.id) in responses]
    keys = [str(i.id) for i in items]
    params = judge_params(ecfg)

    def judge_one(client: Any, n: int) -> dict:
        item = items[n]
        raw, strict, problem = ask_judge(
            client,
            [{"role": "user", "content": cfbench.judge_prompt(item, responses[keys[n]])}],
            lambda text: cfbench.parse_strict(text, item.criteria),
            params=params,
            reask=bool(ecfg.judge_reask),
        )
        return cfbench.judge_record(item, raw, strict, problem)

    judge_keys = [judge_key(ecfg, k, responses[k]) for k in keys]
    records = run_judge(ecfg, "cfbench_judge", judge_keys, judge_one, "CFBench")
    usable = [None if "unreachable" in r else r for r in records]
    metrics = cfbench.score_cfbench(items, usable, on_failed=ecfg.on_failed)
    examples = judged_examples(keys, "response", responses, records)
    return BenchmarkResult("cfbench", metrics, examples, skipped=skipped)
