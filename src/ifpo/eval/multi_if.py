"""Multi-IF (multi-turn, multilingual IFEval) parsing and scoring.

The released file (``multiIF_20241018.csv``; the hub copy ``facebook/Multi-IF``, split
``train``, 4,501 rows) has one conversation per row: ``key`` (a string such as
``"1000:1:zh"``), ``language`` (a name: ``Chinese``, ``Hindi``, ``Thai``...), ``turn_index``,
empty ``turns``/``responses`` columns (filled by the official generation script), and for
k = 1..3 ``turn_k_prompt`` (a JSON chat message ``{"role": "user", "content": ...}``),
``turn_k_instruction_id_list`` (a JSON list) and ``turn_k_kwargs`` (a JSON list of JSON
*strings*, one object per instruction). Plain-text prompts and kwargs lists of objects are
read too. Instruction lists are cumulative: turn k's list holds every constraint still in
force. A turn whose prompt cell is empty or ``None`` (as the official scorer tests) ends the
conversation.

Score per turn, as the official ``metrics.py`` reports it: the mean of prompt-level and
instruction-level accuracy, strict and loose, over conversations having that turn, with the
release's language-aware checkers (:mod:`ifpo.eval.multi_if_checkers`).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifpo.constraints import ConstraintError, ConstraintFormatError, Instruction, parse_ifeval_record
from ifpo.eval import multi_if_checkers
from ifpo.eval.rule_scoring import ExampleScore, ScoreReport

MAX_TURNS = 3
ID_COLUMNS = ("key", "id", "conversation_id")


@dataclass(frozen=True)
class MultiIFConversation:
    """One conversation: its id, language and the instruction of each turn present."""

    id: str
    language: str
    turns: tuple[Instruction, ...]

    def messages_for_turn(self, k: int, previous_responses: Sequence[str]) -> list[dict[str, str]]:
        """Chat messages for turn ``k`` (1-based), using the model's own earlier responses."""
        if not 1 <= k <= len(self.turns):
            raise ValueError(f"conversation {self.id!r} has {len(self.turns)} turns, asked for turn {k}")
        if len(previous_responses) < k - 1:
            raise ValueError(f"turn {k} of {self.id!r} needs {k - 1} previous responses, got "
                             f"{len(previous_responses)}")
        messages: list[dict[str, str]] = []
        for turn in range(k - 1):
            messages.append({"role": "user", "content": self.turns[turn].prompt})
            messages.append({"role": "assistant", "content": previous_responses[turn]})
        messages.append({"role": "user", "content": self.turns[k - 1].prompt})
        return messages


def conversations_for_turn(
    conversations: Sequence[MultiIFConversation], k: int, previous_responses: Mapping[str, Sequence[str]]
) -> list[tuple[str, list[dict[str, str]]]]:
    """``(conversation id, messages)`` for every conversation that has turn ``k``.

    ``previous_responses`` maps conversation id to the model's responses for turns 1..k-1.
    """
    batch = []
    for conversation in conversations:
        if len(conversation.turns) < k:
            continue
        history = previous_responses.get(conversation.id, []) if k > 1 else []
        batch.append((conversation.id, conversation.messages_for_turn(k, history)))
    return batch


def _json_cell(row: Mapping[str, str], column: str, source: str, line: int) -> Any:
    try:
        return json.loads(row[column])
    except json.JSONDecodeError as exc:
        raise ConstraintFormatError(f"invalid JSON: {exc.msg}", source=source, line=line, field=column,
                              reason="invalid_json") from exc


def _prompt_text(cell: str, source: str, line: int, column: str) -> str:
    stripped = cell.strip()
    if stripped.startswith("{"):
        try:
            message = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConstraintFormatError(
                f"invalid JSON message: {exc.msg}",
                source=source,
                line=line,
                field=column,
                reason="invalid_json",
            ) from exc
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ConstraintFormatError(
                "chat message must have a string 'content'",
                source=source,
                line=line,
                field=column,
                reason="bad_type",
            )
        return message["content"]
    return cell


def _kwargs_list(value: Any, source: str, line: int, column: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConstraintFormatError(
            "must be a JSON list", source=source, line=line, field=column, reason="bad_type"
        )
    decoded = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except json.JSONDecodeError as exc:
                raise ConstraintFormatError(
                    f"entry {i} is not JSON: {exc.msg}",
                    source=source,
                    line=line,
                    field=column,
                    reason="invalid_json",
                ) from exc
        decoded.append(item)
    return decoded


def _parse_row(row: Mapping[str, str], id_column: str, source: str, line: int) -> MultiIFConversation:
    turns: list[Instruction] = []
    for k in range(1, MAX_TURNS + 1):
        prompt_col = f"turn_{k}_prompt"
        ids_col = f"turn_{k}_instruction_id_list"
        kwargs_col = f"turn_{k}_kwargs"
        prompt_cell = (row.get(prompt_col) or "").strip()
        if not prompt_cell or prompt_cell == "None":
            break
        for column in (ids_col, kwargs_col):
            if not (row.get(column) or "").strip():
                raise ConstraintFormatError(
                    "empty cell for a turn that has a prompt",
                    source=source,
                    line=line,
                    field=column,
                    reason="missing_field",
                )
        ids = _json_cell(row, ids_col, source, line)
        kwargs = _kwargs_list(_json_cell(row, kwargs_col, source, line), source, line, kwargs_col)
        record = {
            "key": f"{row[id_column]}:turn{k}",
            "prompt": _prompt_text(row[prompt_col], source, line, prompt_col),
            "instruction_id_list": ids,
            "kwargs": kwargs,
        }
        try:
            turns.append(parse_ifeval_record(record, source=source, line=line))
        except ConstraintError as exc:
            field = exc.field or ""
            field = field.replace("instruction_id_list", ids_col).replace("kwargs", kwargs_col)
            raise type(exc)(
                exc.detail, source=source, line=line, field=field or None, reason=exc.reason
            ) from exc
    if not turns:
        raise ConstraintFormatError(
            "row has no turn_1_prompt",
            source=source,
            line=line,
            field="turn_1_prompt",
            reason="missing_field",
        )
    return MultiIFConversation(id=str(row[id_column]), language=row["language"], turns=tuple(turns))


def load_multi_if_csv(path: str | Path) -> list[MultiIFConversation]:
    """Parse a Multi-IF CSV; errors name file, line (of the record's first physical line) and column."""
    source = str(path)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        id_column = next((c for c in ID_COLUMNS if c in header), None)
        required = ["language", "turn_1_prompt", "turn_1_instruction_id_list", "turn_1_kwargs"]
        missing = [c for c in required if c not in header] + ([] if id_column else ["key"])
        if missing:
            raise ConstraintFormatError(
                f"missing column(s) {missing}",
                source=source,
                line=1,
                field=missing[0],
                reason="missing_column",
            )
        conversations = []
        seen: set[str] = set()
        line = reader.line_num + 1
        for row in reader:
            if None in row:  # more cells than header columns
                raise ConstraintFormatError(
                    "row has more cells than the header", source=source, line=line, reason="malformed_row"
                )
            if any(row.get(c) is None for c in required):
                raise ConstraintFormatError(
                    "row has fewer cells than the header", source=source, line=line, reason="malformed_row"
                )
            conversation = _parse_row(row, id_column, source, line)  # type: ignore[arg-type]
            if conversation.id in seen:
                raise ConstraintFormatError(
                    f"duplicate id {conversation.id!r}",
                    source=source,
                    line=line,
                    field=id_column,
                    reason="duplicate_id",
                )
            seen.add(conversation.id)
            conversations.append(conversation)
            line = reader.line_num + 1
    return conversations


@dataclass(frozen=True)
class MultiIFReport:
    """Per-turn and per-(turn, language) rule scores."""

    per_turn: dict[int, ScoreReport]
    per_language: dict[str, dict[int, ScoreReport]]

    def turn_scores(self) -> dict[int, float]:
        """Turn -> mean of the four strict/loose prompt/instruction accuracies."""
        return {k: report.average for k, report in sorted(self.per_turn.items())}

    def language_scores(self) -> dict[str, dict[int, float]]:
        """Language -> turn -> mean of the four accuracies."""
        return {
            lang: {k: r.average for k, r in sorted(turns.items())}
            for lang, turns in sorted(self.per_language.items())
        }


def score_turn(instruction: Instruction, response: str) -> tuple[ExampleScore, ExampleScore]:
    """Strict and loose verdicts for one turn with Multi-IF's checkers (:mod:`multi_if_checkers`)."""
    ids = instruction.instruction_ids
    strict = [multi_if_checkers.check(c, response, loose=False) for c in instruction.constraints]
    loose = [multi_if_checkers.check(c, response, loose=True) for c in instruction.constraints]
    return (
        ExampleScore(instruction.prompt, ids, response, strict),
        ExampleScore(instruction.prompt, ids, response, loose),
    )


def score_multi_if(
    conversations: Sequence[MultiIFConversation], responses: Mapping[str, Sequence[str]]
) -> MultiIFReport:
    """Score responses (conversation id -> one response per turn) turn by turn.

    Every conversation needs a response for each of its turns; a missing one is
    an error naming the conversation and turn.
    """
    strict: dict[tuple[int, str], list[ExampleScore]] = defaultdict(list)
    loose: dict[tuple[int, str], list[ExampleScore]] = defaultdict(list)
    for conversation in conversations:
        answers = responses.get(conversation.id)
        if answers is None or len(answers) < len(conversation.turns):
            got = 0 if answers is None else len(answers)
            raise ConstraintFormatError(
                f"conversation {conversation.id!r} has {len(conversation.turns)} turns but {got} responses",
                field="responses",
                reason="missing_response",
            )
        for k, (instruction, answer) in enumerate(zip(conversation.turns, answers), start=1):
            s, lo = score_turn(instruction, answer)
            strict[(k, conversation.language)].append(s)
            loose[(k, conversation.language)].append(lo)
    per_turn: dict[int, ScoreReport] = {}
    per_language: dict[str, dict[int, ScoreReport]] = defaultdict(dict)
    for k in sorted({k for k, _ in strict}):
        langs = sorted(lang for turn, lang in strict if turn == k)
        per_turn[k] = ScoreReport(
            [e for lang in langs for e in strict[(k, lang)]], [e for lang in langs for e in loose[(k, lang)]]
        )
        for lang in langs:
            per_language[lang][k] = ScoreReport(strict[(k, lang)], loose[(k, lang)])
    return MultiIFReport(per_turn, dict(per_language))
