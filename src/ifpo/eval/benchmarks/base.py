"""What every benchmark adapter shares: the registry, item helpers, response readers and the
resumable generation step.

An adapter is a function ``(eval_cfg, get_generator) -> BenchmarkResult`` registered under its
``eval.benchmark`` name with :func:`register_benchmark`; ``get_generator`` builds the model on first
use, so rescoring saved responses (``eval.responses``) never loads one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ifpo.constraints import ConstraintFormatError
from ifpo.eval.progress import ProgressStore
from ifpo.eval.report import BenchmarkResult
from ifpo.io.jsonl import BadLine, read_jsonl
from ifpo.models.generation import Conversation, Generator, generate_resumable

GetGenerator = Callable[[], Generator]
Adapter = Callable[[DictConfig, GetGenerator], BenchmarkResult]
_REGISTRY: dict[str, Adapter] = {}


def register_benchmark(name: str) -> Callable[[Adapter], Adapter]:
    """Function decorator: make an adapter selectable as ``+eval=<name>``."""

    def decorator(adapter: Adapter) -> Adapter:
        if name in _REGISTRY:
            raise ValueError(f"benchmark {name!r} is already registered by {_REGISTRY[name].__module__}")
        _REGISTRY[name] = adapter
        return adapter

    return decorator


def registered_benchmarks() -> list[str]:
    return sorted(_REGISTRY)


def get_benchmark(name: str) -> Adapter:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown eval.benchmark {name!r}; expected one of {registered_benchmarks()}"
        ) from None


def user_turn(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def take(items: list[Any], limit: int | None) -> list[Any]:
    return items if limit is None else items[: int(limit)]


def progress_store(ecfg: DictConfig, stage: str) -> ProgressStore:
    """The checkpoint of one stage (``<stage>.jsonl`` under ``eval.progress_dir``)."""
    directory = ecfg.get("progress_dir") or Path(str(ecfg.output_dir)) / "progress"
    return ProgressStore(Path(str(directory)) / f"{stage}.jsonl")


def generate_saved(
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
        progress_store(ecfg, f"{stage}_responses"),
        chunk_size=int(ecfg.generation.batch_size),
        desc=desc,
    )


def jsonl_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line, value) of a benchmark JSONL file; an unreadable line is a located ConstraintFormatError."""
    for line_no, value in read_jsonl(path, check_unicode=False):
        if isinstance(value, BadLine):
            raise ConstraintFormatError(value.problem, source=str(path), line=line_no, reason=value.reason)
        yield line_no, value


def hub_rows(name: str, split: str) -> Iterator[tuple[int, Any]]:
    import datasets

    for index, row in enumerate(datasets.load_dataset(name, split=split), start=1):
        yield index, dict(row)


def load_turn_responses(path: str | Path, field: str = "responses") -> dict[str, list[str]]:
    """``{"key", "responses": [...]}`` lines -> key -> one response per turn."""
    result: dict[str, list[str]] = {}
    for line, record in jsonl_rows(path):
        if not isinstance(record, dict):
            raise ConstraintFormatError(
                "record must be a JSON object", source=str(path), line=line, reason="bad_type"
            )
        key, turns = record.get("key"), record.get(field)
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise ConstraintFormatError(
                "'key' must be a string or integer",
                source=str(path),
                line=line,
                field="key",
                reason="missing_field" if key is None else "bad_type",
            )
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise ConstraintFormatError(
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
    for line, record in jsonl_rows(path):
        if not isinstance(record, dict):
            raise ConstraintFormatError(
                "record must be a JSON object", source=str(path), line=line, reason="bad_type"
            )
        key, response = record.get("key"), record.get("response")
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise ConstraintFormatError(
                "'key' must be a string or integer",
                source=str(path),
                line=line,
                field="key",
                reason="missing_field" if key is None else "bad_type",
            )
        if not isinstance(response, str):
            raise ConstraintFormatError(
                "'response' must be a string",
                source=str(path),
                line=line,
                field="response",
                reason="missing_field" if response is None else "bad_type",
            )
        result[str(key)] = response
    return result
