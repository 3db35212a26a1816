"""SysBench: five-turn dialogues answered after the model's own (or the reference) history, judged
per turn with the authors' Chinese prompt. Format, prompt and metrics: :mod:`ifpo.eval.sysbench`."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from ifpo.constraints import ConstraintFormatError
from ifpo.eval.benchmarks.base import (
    GetGenerator,
    generate_saved,
    load_turn_responses,
    register_benchmark,
    take,
)
from ifpo.eval.benchmarks.judging import (
    judge_key,
    judge_params,
    require_data,
    run_judge,
    saved_responses,
    skip_counts,
)
from ifpo.eval.report import BenchmarkResult


def sysbench_responses(
    ecfg: DictConfig, get_generator: GetGenerator, items: list[Any]
) -> dict[str, list[str]]:
    """One answer per user turn. Turn k is answered after the model's own earlier answers or, with
    history=reference, after the reference answers (as the authors' with-gt-history inference)."""
    history = ecfg.history
    answers: dict[str, list[str]] = {str(i.id): [] for i in items}
    for turn in range(max((len(i.user_turns) for i in items), default=0)):
        batch = [i for i in items if len(i.user_turns) > turn]
        earlier = [i.references if history == "reference" else answers[str(i.id)] for i in batch]
        keys = [f"{i.id}#{turn + 1}" for i in batch]
        texts = generate_saved(
            ecfg,
            get_generator,
            keys,
            [i.conversation(turn, e) for i, e in zip(batch, earlier)],
            f"sysbench_{history}",
            f"SysBench turn {turn + 1}",
        )
        for item, key in zip(batch, keys):
            answers[str(item.id)].append(texts[key])
    return answers


@register_benchmark("sysbench")
def sysbench_benchmark(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval import sysbench
    from ifpo.eval.judged import ask_judge

    if ecfg.history not in ("model", "reference"):
        raise ValueError(f"eval.history must be 'model' or 'reference', got {ecfg.history!r}")
    loaded = sysbench.load_sysbench(require_data(ecfg, "SysBench"), on_bad_row=ecfg.on_bad_row)
    items = take(list(loaded), ecfg.limit)
    if ecfg.history == "reference":
        lacking = [i.id for i in items if any(r is None for r in i.references)]
        if lacking:
            raise ValueError(
                f"SysBench: history=reference needs reference answers; item {lacking[0]!r} lacks them"
            )
    ids = [str(i.id) for i in items]
    if ecfg.responses:
        responses = saved_responses(ecfg, ids, load_turn_responses)
    else:
        responses = sysbench_responses(ecfg, get_generator, items)
    skipped = skip_counts(loaded, ids, responses)
    items = [i for i in items if str(i.id) in responses]
    for item in items:
        if len(responses[str(item.id)]) != len(item.user_turns):
            raise ConstraintFormatError(
                f"item {item.id!r}: {len(responses[str(item.id)])} responses "
                f"for {len(item.user_turns)} user turns",
                source=str(ecfg.responses or "generation"),
                field="responses",
                reason="bad_length",
            )
    turns = [(item, t) for item in items for t in range(len(item.user_turns))]

    def history_of(item: Any) -> list[str]:
        return item.references if ecfg.history == "reference" else responses[str(item.id)]

    keys = [
        judge_key(ecfg, f"{item.id}#{t + 1}", *history_of(item)[:t], responses[str(item.id)][t])
        for item, t in turns
    ]
    params = judge_params(ecfg)
    retry = {"temperature": float(ecfg.judge_retry_temperature)}

    def judge_one(client: Any, n: int) -> dict:
        item, turn = turns[n]
        answers = responses[str(item.id)]
        history = history_of(item)
        prompt = sysbench.judge_prompt(item, turn, history, answers[turn])  # type: ignore[arg-type]
        raw, parsed, problem = ask_judge(
            client,
            [{"role": "user", "content": prompt}],
            lambda text: sysbench.parse_verdicts(text, item.criteria[turn]),
            params=params,
            retry_params=retry,
            reask=bool(ecfg.judge_reask),
        )
        return sysbench.judge_record(raw, parsed, problem)

    records = run_judge(ecfg, f"sysbench_{ecfg.history}_judge", keys, judge_one, "SysBench")
    per_item, start = [], 0
    for item in items:
        per_item.append(records[start : start + len(item.user_turns)])
        start += len(item.user_turns)
    metrics = sysbench.score_sysbench(items, per_item, on_failed=ecfg.on_failed)
    examples = [
        {"key": str(i.id), "responses": responses[str(i.id)], "judgement": r} for i, r in zip(items, per_item)
    ]
    return BenchmarkResult("sysbench", metrics, examples, skipped=skipped)
