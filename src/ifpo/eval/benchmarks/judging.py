"""The judge-scored benchmarks' shared steps: the client, saved responses, resumable judging."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig

from ifpo.config.plain import to_plain
from ifpo.constraints import ConstraintFormatError
from ifpo.eval.benchmarks.base import progress_store

log = logging.getLogger(__name__)


def judge_client(ecfg: DictConfig) -> Any:
    from ifpo.judge import JudgeClient, JudgeConfig

    settings = to_plain(ecfg.judge)
    config = JudgeConfig.from_mapping(settings, "eval.judge")  # unknown keys named, not a TypeError
    return JudgeClient(config, show_progress=bool(ecfg.generation.show_progress))


def judge_params(ecfg: DictConfig) -> dict[str, Any]:
    """Request fields beyond JudgeConfig's (e.g. TRACE's top_p 0.8), from ``eval.judge_params``."""
    params = ecfg.get("judge_params")
    return to_plain(params) if params else {}


RELEASE_FILES = {
    "TRACE": "TRACE/202409_trace_evaluation.jsonl of Tongyi-CCAI/Complex-IF",
    "SysBench": "datas/system_benchmark_eval_datas.json of PKU-Baichuan-MLSystemLab/SysBench",
    "CFBench": "data/cfbench_data.json of PKU-Baichuan-MLSystemLab/CFBench",
}


def require_data(ecfg: DictConfig, name: str) -> str:
    """The release file to read; these benchmarks are scored from the authors' repository files."""
    if not ecfg.data:
        raise ValueError(
            f"{name} reads the authors' release file: set eval.data=PATH to {RELEASE_FILES[name]}"
        )
    return str(ecfg.data)


def saved_responses(ecfg: DictConfig, keys: list[str], load: Callable[[str], Mapping[str, Any]]) -> dict:
    """``eval.responses`` keyed by item id; a missing id raises (or, with on_missing=skip, is left out)."""
    responses = load(str(ecfg.responses))
    missing = [k for k in keys if k not in responses]
    if missing and ecfg.on_missing != "skip":
        raise ConstraintFormatError(
            f"no response for {len(missing)} item(s), e.g. key {missing[0]!r}; "
            "set eval.on_missing=skip to score the rest",
            source=str(ecfg.responses),
            field="key",
            reason="missing_response",
        )
    return dict(responses)


def skip_counts(loaded: Any, keys: list[str], responses: Mapping[str, Any]) -> dict[str, int]:
    """Rows the loader skipped and items without a saved response (only with on_missing=skip)."""
    counts = {"bad_row": len(loaded.skipped), "missing_response": sum(k not in responses for k in keys)}
    return {reason: n for reason, n in counts.items() if n}


def judge_key(ecfg: DictConfig, item_key: str, *texts: str) -> str:
    """``item_key`` plus a digest of the judge model and the texts judged: a rerun in the same folder
    reuses a judgement only for the same answer (and history) under the same judge."""
    digest = hashlib.sha256("\x1f".join([str(ecfg.judge.model), *texts]).encode("utf-8")).hexdigest()
    return f"{item_key}@{digest[:16]}"


def run_judge(
    ecfg: DictConfig, stage: str, keys: list[str], judge_one: Callable[[Any, int], dict], label: str
) -> list[dict]:
    """Judge every key not yet saved under ``stage``; a judge that stays unreachable is recorded
    (``eval.judge_on_error=record``, retried on the next run) or raises."""
    from ifpo.eval.judged import judge_resumable
    from ifpo.judge.errors import JudgeError

    if ecfg.judge_on_error not in ("raise", "record"):
        raise ValueError(f"eval.judge_on_error must be 'raise' or 'record', got {ecfg.judge_on_error!r}")
    with judge_client(ecfg) as client:

        def one(i: int) -> dict:
            try:
                return judge_one(client, i)
            except JudgeError as exc:
                if ecfg.judge_on_error == "raise":
                    raise
                log.error("%s: recording failed judgement for %s: %s", label, keys[i], exc)
                return {"unreachable": str(exc)}

        return judge_resumable(
            keys,
            one,
            progress_store(ecfg, stage),
            concurrency=client.config.concurrency,
            desc=f"{label} judge",
            show_progress=bool(ecfg.generation.show_progress),
            durable=lambda record: "unreachable" not in record,
        )


def judged_examples(
    keys: list[str], field: str, responses: Mapping[str, Any], records: list[Any]
) -> list[dict]:
    return [{"key": k, field: responses[k], "judgement": r} for k, r in zip(keys, records)]
