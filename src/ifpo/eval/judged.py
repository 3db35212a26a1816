"""Shared glue for judge-scored benchmarks: reading rows with precise errors,
pairing responses with items, handling failed judgements, saving results.

Every loader reports a bad row as ``<file>:<line>: field '<name>': <problem>``.
JSON arrays get real line numbers too (we decode element by element to know
where each starts), so a typo in a 1 MB published file is easy to find.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from ifpo.io.atomic import atomic_write_json
from ifpo.io.errors import DataFormatError
from ifpo.io.jsonl import BadLine, read_jsonl
from ifpo.judge.verdicts import ConstraintJudgement

log = logging.getLogger(__name__)

T = TypeVar("T")
OnBadRow = Literal["raise", "skip"]
OnFailed = Literal["raise", "skip"]


class BenchmarkFormatError(DataFormatError):
    """A benchmark file row does not have the documented shape (the project's DataFormatError)."""

    def __init__(self, path: str | os.PathLike[str], line: int, field: str, problem: str) -> None:
        super().__init__(str(path), line, field, problem)
        self.path = str(path)


class LoadedItems(list, Generic[T]):  # type: ignore[type-arg]
    """The parsed items, plus one message per row skipped (only with ``on_bad_row='skip'``)."""

    def __init__(self, items: Sequence[T] = (), skipped: Sequence[str] = ()) -> None:
        super().__init__(items)
        self.skipped: list[str] = list(skipped)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def iter_json_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """(line, value) for each row of a JSONL file or each element of a top-level JSON array.

    A ``.jsonl`` file is read line by line (blank lines ignored); anything else must be one
    JSON array. Syntax errors raise BenchmarkFormatError with the offending line.
    """
    path = Path(path)
    if path.suffix == ".jsonl":
        for number, value in read_jsonl(path, check_unicode=False):
            if isinstance(value, BadLine):
                raise BenchmarkFormatError(path, number, "<row>", value.problem)
            yield number, value
        return
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    # Hand-rolled element walk (json.load gives no per-element positions) to report line numbers.
    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        raise BenchmarkFormatError(path, _line_of(text, position), "<file>", "expected a JSON array of items")
    position = _skip_space(text, position + 1)
    if position < len(text) and text[position] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise BenchmarkFormatError(
                path, _line_of(text, exc.pos), "<row>", f"invalid JSON: {exc.msg}"
            ) from None
        yield _line_of(text, position), value
        position = _skip_space(text, end)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            return
        raise BenchmarkFormatError(
            path, _line_of(text, position), "<file>", "expected ',' or ']' between items"
        )


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def load_rows(
    path: str | os.PathLike[str],
    parse_row: Callable[[dict[str, Any], Callable[[str, str], BenchmarkFormatError]], T],
    *,
    on_bad_row: OnBadRow = "raise",
) -> LoadedItems[T]:
    """Parse every row with ``parse_row(row, error)``; ``error(field, problem)`` builds a located error.

    With ``on_bad_row='skip'`` a bad row is logged and counted in ``.skipped`` instead of raising.
    Malformed JSON syntax always raises: the rest of the file cannot be trusted.
    """
    if on_bad_row not in ("raise", "skip"):
        raise ValueError(f"on_bad_row must be 'raise' or 'skip', got {on_bad_row!r}")
    items: list[T] = []
    skipped: list[str] = []
    for line, row in iter_json_records(path):

        def error(field: str, problem: str, _line: int = line) -> BenchmarkFormatError:
            return BenchmarkFormatError(path, _line, field, problem)

        try:
            if not isinstance(row, dict):
                raise error("<row>", f"expected a JSON object, got {type(row).__name__}")
            items.append(parse_row(row, error))
        except BenchmarkFormatError as exc:
            if on_bad_row == "raise":
                raise
            log.warning("skipping bad row: %s", exc)
            skipped.append(str(exc))
    if skipped:
        log.warning("%s: skipped %d bad row(s) of %d", path, len(skipped), len(items) + len(skipped))
    return LoadedItems(items, skipped)


def require(
    row: Mapping[str, Any], field: str, kind: type | tuple[type, ...], error: Callable[..., Exception]
) -> Any:
    """``row[field]``, checked to be present and of ``kind`` (bool is never accepted as int)."""
    if field not in row:
        raise error(field, "missing")
    value = row[field]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise error(field, f"expected {names}, got {type(value).__name__}")
    return value


def non_empty_text(row: Mapping[str, Any], field: str, error: Callable[..., Exception]) -> str:
    value = require(row, field, str, error)
    if not value.strip():
        raise error(field, "is empty")
    return value


def align_responses(item_ids: Sequence[Any], responses: Mapping[Any, T] | Sequence[T], bench: str) -> list[T]:
    """Responses in item order, from a list aligned with the items or a mapping keyed by item id."""
    if isinstance(responses, Mapping):
        missing = [i for i in item_ids if i not in responses and str(i) not in responses]
        if missing:
            raise KeyError(f"{bench}: no response for {len(missing)} item(s), e.g. id {missing[0]!r}")
        return [responses[i] if i in responses else responses[str(i)] for i in item_ids]
    if len(responses) != len(item_ids):
        raise ValueError(f"{bench}: {len(responses)} responses for {len(item_ids)} items")
    return list(responses)


def split_failed(
    judgements: Sequence[T], is_ok: Callable[[T], bool], on_failed: OnFailed, bench: str
) -> list[T]:
    """The judgements to score; failed ones raise, or are skipped and counted by the caller."""
    if on_failed not in ("raise", "skip"):
        raise ValueError(f"on_failed must be 'raise' or 'skip', got {on_failed!r}")
    usable = [j for j in judgements if is_ok(j)]
    n_failed = len(judgements) - len(usable)
    if n_failed and on_failed == "raise":
        raise ValueError(
            f"{bench}: {n_failed} of {len(judgements)} judgement(s) failed; rerun the judge (answers are "
            f"cached) "
            "or score with on_failed='skip'"
        )
    if n_failed:
        log.warning("%s: scoring without %d failed judgement(s)", bench, n_failed)
    return usable


def judgement_ok(judgement: ConstraintJudgement) -> bool:
    return judgement.ok and judgement.satisfied is not None


def save_records(path: str | os.PathLike[str], records: Sequence[Mapping[str, Any]]) -> None:
    """Write per-item judgement records as one JSON array, atomically (see ``ifpo.io.atomic``)."""
    atomic_write_json(path, list(records))


def judge_resumable(
    keys: Sequence[str],
    judge_one: Callable[[int], dict[str, Any]],
    store: Any,
    *,
    concurrency: int,
    desc: str = "judging",
    show_progress: bool = True,
    durable: Callable[[dict[str, Any]], bool] = lambda record: True,
) -> list[dict[str, Any]]:
    """``judge_one(i)`` for every key ``store`` lacks, each record saved the moment it is done.

    At most ``concurrency`` calls run at once. The first exception stops the batch (calls not yet
    started are cancelled) and is re-raised; every record finished before it is already on disk,
    so a rerun with the same store judges only what is left -- no item is judged twice. Records
    ``durable`` rejects (a judge that could not be reached) are returned but not saved, so the
    next run asks again.
    """
    from ifpo.judge.concurrency import map_bounded

    todo = [i for i, key in enumerate(keys) if key not in store]
    if len(todo) < len(keys):
        log.info("%s: %d of %d judgements already saved", desc, len(keys) - len(todo), len(keys))

    transient: dict[str, dict[str, Any]] = {}

    def run(i: int) -> None:
        record = judge_one(i)
        if durable(record):
            store.put(keys[i], record)
        else:
            transient[keys[i]] = record

    map_bounded(run, todo, max_workers=concurrency, desc=desc, show_progress=show_progress)
    return [transient[key] if key in transient else store.get(key) for key in keys]


def ask_judge(
    client: Any,
    messages: Sequence[Mapping[str, str]],
    parse: Callable[[str], T],
    *,
    params: Mapping[str, Any],
    retry_params: Mapping[str, Any] | None = None,
    reask: bool = True,
) -> tuple[str, T | None, str | None]:
    """(raw answer, parsed answer or None, problem or None) for one official-prompt judge call.

    The first answer is kept whatever it says (the official fallbacks need it). When it does
    not parse, the judge is asked again -- with ``retry_params`` (e.g. SysBench's higher
    temperature) -- through the client's retry loop, which only accepts an answer that parses.
    ``reask=False`` keeps the first answer however it reads. A judge that stays unreachable
    raises :class:`~ifpo.judge.JudgeError`.
    """
    from ifpo.judge.errors import JudgeError

    first = client.chat(list(messages), **params)
    try:
        return first, parse(first), None
    except ValueError as exc:
        problem = str(exc)
    if not reask:
        return first, None, f"unparsable judge answer ({problem})"
    try:
        again = client.chat(list(messages), validate=parse, **{**params, **(retry_params or {})})
    except JudgeError as exc:
        return first, None, f"unparsable judge answer ({problem}); re-asking failed: {exc}"
    return again, parse(again), None
