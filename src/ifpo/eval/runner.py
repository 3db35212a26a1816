"""The body of ``eval.py``: load a benchmark, generate (or read saved responses), score, report.

Each benchmark adapter turns its items into chat conversations, asks the generator for
responses (only when no ``eval.responses`` file is given, so rescoring never loads a
model), scores them with the benchmark's own scorer (``rule_scoring``, ``multi_if``,
``sysbench``...) and returns a :class:`~ifpo.eval.report.BenchmarkResult` whose per-example
records double as a responses file for the next rescoring run.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ifpo.constraints import (
    IFBENCH_KIND_IDS,
    IFEVAL_KIND_IDS,
    DataFormatError,
    Instruction,
    parse_ifeval_record,
)
from ifpo.eval.generation import (
    Conversation,
    GenerationSettings,
    Generator,
    HFGenerator,
    VLLMGenerator,
    generate_resumable,
)
from ifpo.eval.progress import ProgressStore
from ifpo.eval.report import BenchmarkResult, kind_table, log_to_loggers, print_table, write_results
from ifpo.eval.rule_scoring import (
    ScoreReport,
    load_responses_jsonl,
    per_instruction_accuracy,
    score_example,
    score_ifbench,
    score_ifeval,
)

log = logging.getLogger(__name__)

GetGenerator = Callable[[], Generator]
KNOWN_IDS = {"ifeval": frozenset(IFEVAL_KIND_IDS), "ifbench": frozenset(IFBENCH_KIND_IDS)}


# ---------------------------------------------------------------------------- generator
def generation_settings(gen_cfg: Mapping[str, Any]) -> GenerationSettings:
    keys = GenerationSettings.__dataclass_fields__
    return GenerationSettings(**{k: v for k, v in gen_cfg.items() if k in keys})


def build_generator(cfg: DictConfig) -> Generator:
    """The configured backend around the configured policy (a training checkpoint included)."""
    from ifpo.eval.checkpoint import checkpoint_model_config, load_policy

    gen_cfg = cfg.eval.generation
    settings = generation_settings(gen_cfg)
    if gen_cfg.backend == "vllm":
        if cfg.eval.checkpoint:
            raise ValueError(
                "backend=vllm reads HF folders only; evaluate a .ckpt with backend=hf "
                "or export its policy with save_pretrained first"
            )
        return VLLMGenerator(cfg.model.name_or_path, settings, dtype=str(cfg.model.dtype))
    if gen_cfg.backend != "hf":
        raise ValueError(f"eval.generation.backend must be 'hf' or 'vllm', got {gen_cfg.backend!r}")
    model_cfg: Any = cfg.get("model")
    if cfg.eval.checkpoint and cfg.eval.get("model_from_checkpoint", True):
        # The architecture and tokenizer the run trained with, saved in the checkpoint's hparams.
        model_cfg = checkpoint_model_config(cfg.eval.checkpoint) or model_cfg
    model, tokenizer = load_policy(model_cfg, cfg.eval.checkpoint)
    device = gen_cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    return HFGenerator(model.to(device), tokenizer, settings)


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _limit(items: list[Any], limit: int | None) -> list[Any]:
    return items if limit is None else items[: int(limit)]


def _progress(ecfg: DictConfig, stage: str) -> ProgressStore:
    """The checkpoint of one stage (``<stage>.jsonl`` under ``eval.progress_dir``)."""
    directory = ecfg.get("progress_dir") or Path(str(ecfg.output_dir)) / "progress"
    return ProgressStore(Path(str(directory)) / f"{stage}.jsonl")


def _generate(
    ecfg: DictConfig,
    get_generator: GetGenerator,
    keys: list[str],
    conversations: list[Conversation],
    stage: str,
    desc: str,
) -> dict[str, str]:
    """``key -> response``, each batch saved as it is done; what a previous run saved is reused."""
    return generate_resumable(
        get_generator,
        keys,
        conversations,
        _progress(ecfg, f"{stage}_responses"),
        chunk_size=int(ecfg.generation.batch_size),
        desc=desc,
    )


# ------------------------------------------------------------------- IFEval / IFBench
def _jsonl_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line_no, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield line_no, json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"invalid JSON: {exc.msg}", source=str(path), line=line_no, reason="invalid_json"
                ) from exc


def _hub_rows(name: str, split: str) -> Iterator[tuple[int, Any]]:
    import datasets

    for index, row in enumerate(datasets.load_dataset(name, split=split), start=1):
        yield index, dict(row)


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
        raise DataFormatError(
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


def _rule_benchmark(ecfg: DictConfig, get_generator: GetGenerator, benchmark: str) -> BenchmarkResult:
    if ecfg.data:
        source, rows = str(ecfg.data), list(_jsonl_rows(ecfg.data))
    else:
        source, rows = f"{ecfg.hub_name}[{ecfg.hub_split}]", list(_hub_rows(ecfg.hub_name, ecfg.hub_split))
    instructions, skipped = load_instructions(rows, source, benchmark, ecfg.on_unknown)
    instructions = _limit(instructions, ecfg.limit)
    if ecfg.responses:
        responses = load_responses_jsonl(ecfg.responses)
    else:
        prompts = [i.prompt for i in instructions]
        responses = _generate(ecfg, get_generator, prompts, [_user(p) for p in prompts], benchmark, benchmark)
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
    return BenchmarkResult(benchmark, _rule_metrics(report), examples, kind_table(report), dict(skipped))


def _rule_metrics(report: ScoreReport) -> dict[str, float | int | None]:
    return {
        **report.summary(),
        "num_prompts": len(report.strict),
        "num_instructions": sum(len(e.follow_instruction_list) for e in report.strict),
    }


# ----------------------------------------------------------------------------- Multi-IF
def load_turn_responses(path: str | Path, field: str = "responses") -> dict[str, list[str]]:
    """``{"key", "responses": [...]}`` lines -> key -> one response per turn."""
    result: dict[str, list[str]] = {}
    for line, record in _jsonl_rows(path):
        if not isinstance(record, dict):
            raise DataFormatError(
                "record must be a JSON object", source=str(path), line=line, reason="bad_type"
            )
        key, turns = record.get("key"), record.get(field)
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise DataFormatError(
                "'key' must be a string or integer",
                source=str(path),
                line=line,
                field="key",
                reason="missing_field" if key is None else "bad_type",
            )
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise DataFormatError(
                f"{field!r} must be a list of strings",
                source=str(path),
                line=line,
                field=field,
                reason="missing_field" if turns is None else "bad_type",
            )
        result[str(key)] = turns
    return result


def load_keyed_responses(path: str | Path) -> dict[str, str]:
    """``{"key", "response"}`` lines -> key -> response."""
    result: dict[str, str] = {}
    for line, record in _jsonl_rows(path):
        if not isinstance(record, dict):
            raise DataFormatError(
                "record must be a JSON object", source=str(path), line=line, reason="bad_type"
            )
        key, response = record.get("key"), record.get("response")
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise DataFormatError(
                "'key' must be a string or integer",
                source=str(path),
                line=line,
                field="key",
                reason="missing_field" if key is None else "bad_type",
            )
        if not isinstance(response, str):
            raise DataFormatError(
                "'response' must be a string",
                source=str(path),
                line=line,
                field="response",
                reason="missing_field" if response is None else "bad_type",
            )
        result[str(key)] = response
    return result


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
        raise DataFormatError(
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


def _multi_if(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval.multi_if import conversations_for_turn, load_multi_if_csv, score_multi_if

    path, skipped = _check_multi_if_ids(_multi_if_csv(ecfg), ecfg.on_unknown, ecfg.output_dir)
    conversations = _limit(load_multi_if_csv(path), ecfg.limit)
    if ecfg.responses:
        responses = load_turn_responses(ecfg.responses)
    else:
        responses = {c.id: [] for c in conversations}
        # Turn k is generated from the model's own answers to turns 1..k-1.
        for k in range(1, max((len(c.turns) for c in conversations), default=0) + 1):
            batch = conversations_for_turn(conversations, k, responses)
            keys = [f"{cid}#{k}" for cid, _ in batch]
            texts = _generate(
                ecfg, get_generator, keys, [m for _, m in batch], "multi_if", f"Multi-IF turn {k}"
            )
            for (cid, _), key in zip(batch, keys):
                responses[cid].append(texts[key])
    report = score_multi_if(conversations, responses)
    examples = []
    for c in conversations:
        turns = []
        for instruction, answer in zip(c.turns, responses[c.id]):
            s, lo = score_example(instruction, answer)
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


# ------------------------------------------------------------------- synthetic held-out
def _synthetic(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval.synthetic_heldout import heldout_examples, score_heldout

    items = heldout_examples(int(ecfg.num_examples), int(ecfg.seed))
    if ecfg.responses:
        responses = load_keyed_responses(ecfg.responses)
    else:
        keys = [str(e.key) for e in items]
        conversations = [e.messages for e in items]
        texts = _generate(ecfg, get_generator, keys, conversations, "synthetic", "synthetic heldout")
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
    return BenchmarkResult("synthetic", _rule_metrics(report), examples, kind_table(report))


# ----------------------------------------------------------------------- judge-scored
def _judge_client(ecfg: DictConfig) -> Any:
    from ifpo.judge import JudgeClient, JudgeConfig

    settings = OmegaConf.to_container(ecfg.judge, resolve=True)
    return JudgeClient(JudgeConfig(**settings), show_progress=bool(ecfg.generation.show_progress))  # type: ignore[arg-type]


def _judge_params(ecfg: DictConfig) -> dict[str, Any]:
    """Request fields beyond JudgeConfig's (e.g. TRACE's top_p 0.8), from ``eval.judge_params``."""
    params = ecfg.get("judge_params")
    return dict(OmegaConf.to_container(params, resolve=True)) if params else {}  # type: ignore[arg-type]


def _require_data(ecfg: DictConfig, name: str) -> str:
    if not ecfg.data:
        raise ValueError(
            f"{name} has no hub copy in a fixed layout: set eval.data=PATH to its published file"
        )
    return str(ecfg.data)


def _saved_responses(ecfg: DictConfig, keys: list[str], load: Callable[[str], Mapping[str, Any]]) -> dict:
    """``eval.responses`` keyed by item id; a missing id raises (or, with on_missing=skip, is left out)."""
    responses = load(str(ecfg.responses))
    missing = [k for k in keys if k not in responses]
    if missing and ecfg.on_missing != "skip":
        raise DataFormatError(
            f"no response for {len(missing)} item(s), e.g. key {missing[0]!r}; "
            "set eval.on_missing=skip to score the rest",
            source=str(ecfg.responses),
            field="key",
            reason="missing_response",
        )
    return dict(responses)


def _skip_counts(loaded: Any, keys: list[str], responses: Mapping[str, Any]) -> dict[str, int]:
    """Rows the loader skipped and items without a saved response (only with on_missing=skip)."""
    counts = {"bad_row": len(loaded.skipped), "missing_response": sum(k not in responses for k in keys)}
    return {reason: n for reason, n in counts.items() if n}


def _run_judge(
    ecfg: DictConfig, stage: str, keys: list[str], judge_one: Callable[[Any, int], dict], label: str
) -> list[dict]:
    """Judge every key not yet saved under ``stage``; a judge that stays unreachable is recorded
    (``eval.judge_on_error=record``, retried on the next run) or raises."""
    from ifpo.eval.judged import judge_resumable
    from ifpo.judge.errors import JudgeError

    if ecfg.judge_on_error not in ("raise", "record"):
        raise ValueError(f"eval.judge_on_error must be 'raise' or 'record', got {ecfg.judge_on_error!r}")
    with _judge_client(ecfg) as client:

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
            _progress(ecfg, stage),
            concurrency=client.config.concurrency,
            desc=f"{label} judge",
            show_progress=bool(ecfg.generation.show_progress),
            durable=lambda record: "unreachable" not in record,
        )


def _examples(keys: list[str], field: str, responses: Mapping[str, Any], records: list[Any]) -> list[dict]:
    return [{"key": k, field: responses[k], "judgement": r} for k, r in zip(keys, records)]


def _trace(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval import trace_bench as trace
    from ifpo.eval.judged import ask_judge

    loaded = trace.load_trace(_require_data(ecfg, "TRACE"), on_bad_row=ecfg.on_bad_row)
    items = _limit(list(loaded), ecfg.limit)
    keys = [item.id for item in items]
    if ecfg.responses:
        responses = _saved_responses(ecfg, keys, load_keyed_responses)
    else:  # the file's messages as they are: the system message is part of the benchmark
        responses = _generate(ecfg, get_generator, keys, [list(i.messages) for i in items], "trace", "TRACE")
    skipped = _skip_counts(loaded, keys, responses)
    items = [i for i in items if i.id in responses]
    keys = [i.id for i in items]
    params = _judge_params(ecfg)

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

    records = _run_judge(ecfg, "trace_judge", keys, judge_one, "TRACE")
    metrics = trace.score_trace(
        items, records, pass_threshold=float(ecfg.pass_threshold), on_failed=ecfg.on_failed
    )
    examples = _examples(keys, "response", responses, records)
    return BenchmarkResult("trace", metrics, examples, skipped=skipped)


def _sysbench_responses(
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
        texts = _generate(
            ecfg, get_generator, keys, [i.conversation(turn, e) for i, e in zip(batch, earlier)],
            f"sysbench_{history}", f"SysBench turn {turn + 1}",
        )
        for item, key in zip(batch, keys):
            answers[str(item.id)].append(texts[key])
    return answers


def _sysbench(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval import sysbench
    from ifpo.eval.judged import ask_judge

    if ecfg.history not in ("model", "reference"):
        raise ValueError(f"eval.history must be 'model' or 'reference', got {ecfg.history!r}")
    loaded = sysbench.load_sysbench(_require_data(ecfg, "SysBench"), on_bad_row=ecfg.on_bad_row)
    items = _limit(list(loaded), ecfg.limit)
    if ecfg.history == "reference":
        lacking = [i.id for i in items if any(r is None for r in i.references)]
        if lacking:
            raise ValueError(
                f"SysBench: history=reference needs reference answers; item {lacking[0]!r} lacks them"
            )
    ids = [str(i.id) for i in items]
    if ecfg.responses:
        responses = _saved_responses(ecfg, ids, load_turn_responses)
    else:
        responses = _sysbench_responses(ecfg, get_generator, items)
    skipped = _skip_counts(loaded, ids, responses)
    items = [i for i in items if str(i.id) in responses]
    for item in items:
        if len(responses[str(item.id)]) != len(item.user_turns):
            raise DataFormatError(
                f"item {item.id!r}: {len(responses[str(item.id)])} responses "
                f"for {len(item.user_turns)} user turns",
                source=str(ecfg.responses or "generation"),
                field="responses",
                reason="bad_length",
            )
    turns = [(item, t) for item in items for t in range(len(item.user_turns))]
    keys = [f"{item.id}#{t + 1}" for item, t in turns]
    params = _judge_params(ecfg)
    retry = {"temperature": float(ecfg.judge_retry_temperature)}

    def judge_one(client: Any, n: int) -> dict:
        item, turn = turns[n]
        answers = responses[str(item.id)]
        history = item.references if ecfg.history == "reference" else answers
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

    records = _run_judge(ecfg, f"sysbench_{ecfg.history}_judge", keys, judge_one, "SysBench")
    per_item, start = [], 0
    for item in items:
        per_item.append(records[start : start + len(item.user_turns)])
        start += len(item.user_turns)
    metrics = sysbench.score_sysbench(items, per_item, on_failed=ecfg.on_failed)
    examples = [
        {"key": str(i.id), "responses": responses[str(i.id)], "judgement": r} for i, r in zip(items, per_item)
    ]
    return BenchmarkResult("sysbench", metrics, examples, skipped=skipped)


def _cfbench(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval import cfbench
    from ifpo.eval.judged import ask_judge

    loaded = cfbench.load_cfbench(_require_data(ecfg, "CFBench"), on_bad_row=ecfg.on_bad_row)
    items = _limit(list(loaded), ecfg.limit)
    keys = [str(item.id) for item in items]
    if ecfg.responses:
        responses = _saved_responses(ecfg, keys, load_keyed_responses)
    else:  # the prompt alone, as the authors' inference sends it (item 810's empty prompt included)
        conversations = [_user(i.prompt) for i in items]
        responses = _generate(ecfg, get_generator, keys, conversations, "cfbench", "CFBench")
    skipped = _skip_counts(loaded, keys, responses)
    items = [i for i in items if str(i.id) in responses]
    keys = [str(i.id) for i in items]
    params = _judge_params(ecfg)

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

    records = _run_judge(ecfg, "cfbench_judge", keys, judge_one, "CFBench")
    usable = [None if "unreachable" in r else r for r in records]
    metrics = cfbench.score_cfbench(items, usable, on_failed=ecfg.on_failed)
    examples = _examples(keys, "response", responses, records)
    return BenchmarkResult("cfbench", metrics, examples, skipped=skipped)


BENCHMARKS: dict[str, Callable[[DictConfig, GetGenerator], BenchmarkResult]] = {
    "ifeval": lambda e, g: _rule_benchmark(e, g, "ifeval"),
    "ifbench": lambda e, g: _rule_benchmark(e, g, "ifbench"),
    "multi_if": _multi_if,
    "synthetic": _synthetic,
    "sysbench": _sysbench,
    "cfbench": _cfbench,
    "trace": _trace,
}


# ------------------------------------------------------------------------------- entry
def prepare_wandb_env() -> None:
    """Offline W&B unless a key is set, so a run never stops at a login prompt."""
    if not os.environ.get("WANDB_API_KEY") and not os.environ.get("WANDB_MODE"):
        os.environ["WANDB_MODE"] = "offline"


def evaluate(cfg: DictConfig) -> BenchmarkResult:
    """Run the benchmark ``cfg.eval`` names and write its results folder; returns the result."""
    if "eval" not in cfg or cfg.eval is None or not cfg.eval.get("benchmark"):
        raise ValueError(f"choose a benchmark: python eval.py +eval=NAME with NAME in {sorted(BENCHMARKS)}")
    ecfg = cfg.eval
    if ecfg.benchmark not in BENCHMARKS:
        raise ValueError(f"unknown eval.benchmark {ecfg.benchmark!r}; expected one of {sorted(BENCHMARKS)}")
    torch.manual_seed(int(cfg.get("seed", 0)))
    generator: list[Generator] = []

    def get_generator() -> Generator:  # built on first use: rescoring saved responses loads no model
        if not generator:
            generator.append(build_generator(cfg))
        return generator[0]

    result = BENCHMARKS[ecfg.benchmark](ecfg, get_generator)
    paths = write_results(result, ecfg.output_dir, chart=bool(ecfg.chart))
    print_table(result)
    log.info("results: %s", ", ".join(str(p) for p in paths.values()))
    if cfg.get("logger"):
        from ifpo.training.pipeline import instantiate_group

        prepare_wandb_env()
        log_to_loggers(result, instantiate_group(cfg.logger), paths)
    return result
