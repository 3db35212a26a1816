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
from ifpo.eval.generation import GenerationSettings, Generator, HFGenerator, VLLMGenerator
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
        texts = get_generator().generate([_user(i.prompt) for i in instructions], desc=benchmark)
        responses = {i.prompt: t for i, t in zip(instructions, texts)}
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
        generator = get_generator()
        responses = {c.id: [] for c in conversations}
        # Turn k is generated from the model's own answers to turns 1..k-1.
        for k in range(1, max((len(c.turns) for c in conversations), default=0) + 1):
            batch = conversations_for_turn(conversations, k, responses)
            texts = generator.generate([messages for _, messages in batch], desc=f"Multi-IF turn {k}")
            for (cid, _), text in zip(batch, texts):
                responses[cid].append(text)
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

    items = _limit(heldout_examples(int(ecfg.num_examples), int(ecfg.seed)), ecfg.limit)
    if ecfg.responses:
        responses = load_keyed_responses(ecfg.responses)
    else:
        texts = get_generator().generate([e.messages for e in items], desc="synthetic heldout")
        responses = {e.key: t for e, t in zip(items, texts)}
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
    return JudgeClient(JudgeConfig(**settings))  # type: ignore[arg-type]


def _require_data(ecfg: DictConfig, name: str) -> str:
    if not ecfg.data:
        raise ValueError(
            f"{name} has no hub copy in a fixed layout: set eval.data=PATH to its published file"
        )
    return str(ecfg.data)


def _single_turn_responses(
    ecfg: DictConfig, get_generator: GetGenerator, items: list[Any], prompt: Callable[[Any], str], name: str
) -> dict[str, str]:
    if ecfg.responses:
        return load_keyed_responses(ecfg.responses)
    texts = get_generator().generate([_user(prompt(i)) for i in items], desc=name)
    return {str(i.id): t for i, t in zip(items, texts)}


def _judged_examples(
    items: list[Any], texts: Mapping[str, Any], judgements: list[Any], field: str
) -> list[dict]:
    examples = []
    for item, judged in zip(items, judgements):
        verdicts = (
            [j.to_dict() for j in judged.turns] if hasattr(judged, "turns") else judged.judgement.to_dict()
        )
        examples.append({"key": str(item.id), field: texts[str(item.id)], "judgement": verdicts})
    return examples


def _sysbench(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval.sysbench import judge_sysbench, load_sysbench, score_sysbench

    items = load_sysbench(_require_data(ecfg, "SysBench"), on_bad_row=ecfg.on_bad_row)
    skipped = {"bad_row": len(items.skipped)} if items.skipped else {}
    items = _limit(list(items), ecfg.limit)
    if ecfg.responses:
        responses = load_turn_responses(ecfg.responses)
    else:
        generator = get_generator()
        responses = {str(i.id): [] for i in items}
        for turn in range(max((len(i.user_turns) for i in items), default=0)):
            batch = [i for i in items if len(i.user_turns) > turn]
            conversations = []
            for item in batch:
                messages = [{"role": "system", "content": item.system_prompt}]
                for t in range(turn):
                    messages += _user(item.user_turns[t]) + [
                        {"role": "assistant", "content": responses[str(item.id)][t]}
                    ]
                conversations.append(messages + _user(item.user_turns[turn]))
            for item, text in zip(batch, generator.generate(conversations, desc=f"SysBench turn {turn + 1}")):
                responses[str(item.id)].append(text)
    with _judge_client(ecfg) as client:
        judgements = judge_sysbench(
            items, responses, client, history=ecfg.history, on_error=ecfg.judge_on_error
        )
    metrics = score_sysbench(judgements, on_failed=ecfg.on_failed)
    return BenchmarkResult(
        "sysbench", metrics, _judged_examples(items, responses, judgements, "responses"), skipped=skipped
    )


def _judged_single_turn(
    ecfg: DictConfig, get_generator: GetGenerator, name: str, label: str,
    load: Callable[..., Any], prompt_of: Callable[[Any], Any], judge: Callable[..., Any], score: Callable[[Any], dict],
) -> BenchmarkResult:
    """Load, generate one response per item, judge and score: the shared shape of CFBench and TRACE."""
    loaded = load(_require_data(ecfg, label), on_bad_row=ecfg.on_bad_row)
    items = _limit(list(loaded), ecfg.limit)
    responses = _single_turn_responses(ecfg, get_generator, items, prompt_of, label)
    with _judge_client(ecfg) as client:
        judgements = judge(items, responses, client, on_error=ecfg.judge_on_error)
    skipped = {"bad_row": len(loaded.skipped)} if loaded.skipped else {}
    return BenchmarkResult(
        name, score(judgements), _judged_examples(items, responses, judgements, "response"), skipped=skipped
    )


def _cfbench(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval.cfbench import judge_cfbench, load_cfbench, score_cfbench

    return _judged_single_turn(
        ecfg, get_generator, "cfbench", "CFBench", load_cfbench, lambda i: i.prompt, judge_cfbench,
        lambda judgements: score_cfbench(judgements, on_failed=ecfg.on_failed),
    )


def _trace(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    from ifpo.eval.trace_bench import judge_trace, load_trace, score_trace

    return _judged_single_turn(
        ecfg, get_generator, "trace", "TRACE", load_trace, lambda i: i.instruction, judge_trace,
        lambda judgements: score_trace(judgements, threshold=ecfg.threshold, on_failed=ecfg.on_failed),
    )


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
