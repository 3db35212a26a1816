"""IFBench scored the way the official allenai/IFBench evaluator (``run_eval.py``) scores it.

What the official evaluator does, and so what this module does:

* responses are matched to prompts by exact text, else by the prompt with surrounding
  whitespace removed (the released sample outputs carry a trailing space);
* a prompt without a response fails every one of its instructions and stays in the
  denominators (it is counted and reported as ``missing_response``);
* strict: the checker on the response; loose: any of the eight IFEval variants.

What it adds, because a run must never abort after generating everything:

* a checker needing NLTK data that cannot be installed here (stopwords for
  ``ratio:stop_words``, the perceptron tagger for ``words:start_verb``) or crashing on a
  response is caught per instruction, counted by instruction id and reported next to the
  score; ``on_resource_error=fail`` (default) scores it as not followed, ``skip`` leaves
  those prompts out of the denominators;
* reasoning blocks (``<think>...</think>``) are removed before scoring, as the IFBench
  authors do for thinking models;
* generated responses are written (official ``{"prompt", "response"}`` JSONL, usable with
  the official ``run_eval.py``) before anything is scored.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ifpo.constraints import ConstraintError, ConstraintFormatError, Instruction, ResourceUnavailableError
from ifpo.eval.rule_scoring import ExampleScore, ScoreReport, load_responses_jsonl
from ifpo.io.jsonl import read_jsonl

log = logging.getLogger(__name__)

RESPONSES_FILE = "responses.jsonl"
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)

OnMissing = Literal["fail", "raise", "skip"]
OnResourceError = Literal["fail", "skip"]


def strip_think(text: str) -> str:
    """The answer without reasoning: closed ``<think>`` blocks removed, text after a stray
    ``</think>`` kept (templates that open the block in the prompt), and an unclosed block
    (generation stopped while thinking) leaves no answer."""
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        text = text.split("<think>", 1)[0]
    return text.strip()


def response_lookup(responses: Mapping[str, str]) -> dict[str, str]:
    """Prompt -> response, also under each prompt with surrounding whitespace removed (official matching)."""
    lookup = dict(responses)
    for prompt, response in responses.items():
        lookup.setdefault(prompt.strip(), response)
    return lookup


def find_response(prompt: str, lookup: Mapping[str, str]) -> str | None:
    if prompt in lookup:
        return lookup[prompt]
    return lookup.get(prompt.strip())


@dataclass
class IFBenchReport:
    """The rule report plus what could not be scored as the official evaluator would."""

    report: ScoreReport
    missing: list[str] = field(default_factory=list)  # prompt keys without a response
    resource_errors: Counter[str] = field(default_factory=Counter)  # instruction id -> count
    checker_errors: Counter[str] = field(default_factory=Counter)
    skipped_prompts: int = 0  # left out of the denominators (on_resource_error=skip / on_missing=skip)

    def counters(self) -> dict[str, int]:
        """Flat counts for the results' ``skipped``/metrics section."""
        out = {"missing_response": len(self.missing)}
        out.update({f"resource_error:{k}": v for k, v in sorted(self.resource_errors.items())})
        out.update({f"checker_error:{k}": v for k, v in sorted(self.checker_errors.items())})
        if self.skipped_prompts:
            out["prompts_left_out"] = self.skipped_prompts
        return {k: v for k, v in out.items() if v}


def _verdicts(
    instruction: Instruction, response: str, loose: bool, errors: dict[str, Counter[str]]
) -> list[bool]:
    verdicts = []
    for constraint in instruction.constraints:
        try:
            verdicts.append(bool(constraint.check(response, loose=loose, prompt=instruction.prompt)))
        except ResourceUnavailableError:
            errors["resource"][constraint.kind] += 1
            verdicts.append(False)
        except (ConstraintError, ArithmeticError, LookupError, ValueError, TypeError):
            # The official evaluator would stop here; one response must not cost the whole run.
            errors["checker"][constraint.kind] += 1
            verdicts.append(False)
    return verdicts


def score_ifbench_official(
    instructions: Sequence[Instruction],
    responses: Mapping[str, str],
    on_missing: OnMissing = "fail",
    on_resource_error: OnResourceError = "fail",
    think: bool = True,
) -> IFBenchReport:
    """Score ``responses`` (prompt -> text) against IFBench ``instructions`` as ``run_eval.py`` does."""
    if on_missing not in ("fail", "raise", "skip"):
        raise ValueError(f"on_missing must be 'fail', 'raise' or 'skip', got {on_missing!r}")
    if on_resource_error not in ("fail", "skip"):
        raise ValueError(f"on_resource_error must be 'fail' or 'skip', got {on_resource_error!r}")
    lookup = response_lookup(responses)
    strict: list[ExampleScore] = []
    loose: list[ExampleScore] = []
    result = IFBenchReport(ScoreReport(strict, loose))
    for instruction in instructions:
        ids = instruction.instruction_ids
        raw = find_response(instruction.prompt, lookup)
        if raw is None:
            if on_missing == "raise":
                raise ConstraintFormatError(
                    f"no response for prompt {instruction.id or ''} {instruction.prompt[:80]!r}",
                    field="response", reason="missing_response",
                )
            result.missing.append(instruction.id or instruction.prompt[:80])
            if on_missing == "skip":
                result.skipped_prompts += 1
                continue
            failed = [False] * len(ids)
            strict.append(ExampleScore(instruction.prompt, ids, "", failed))
            loose.append(ExampleScore(instruction.prompt, ids, "", list(failed)))
            continue
        response = strip_think(raw) if think else raw
        errors: dict[str, Counter[str]] = {"resource": Counter(), "checker": Counter()}
        s = _verdicts(instruction, response, False, errors)
        lo = _verdicts(instruction, response, True, {"resource": Counter(), "checker": Counter()})
        result.resource_errors.update(errors["resource"])  # counted once, from the strict pass
        result.checker_errors.update(errors["checker"])
        if errors["resource"] and on_resource_error == "skip":
            result.skipped_prompts += 1
            continue
        strict.append(ExampleScore(instruction.prompt, ids, response, s))
        loose.append(ExampleScore(instruction.prompt, ids, response, lo))
    return result


def load_ifbench_responses(path: str | Path) -> dict[str, str]:
    """Official ``{"prompt", "response"}`` JSONL (or our ``examples.jsonl``, whose rows marked
    ``missing_response`` stay missing, so rescoring reports the same counts)."""
    responses = load_responses_jsonl(path)  # validates every line, with file/line errors
    for _, record in read_jsonl(path, check_unicode=False):  # every line a valid object by now
        if record.get("missing_response") is True:
            responses.pop(record["prompt"], None)
    return responses


def write_responses(path: str | Path, prompts: Sequence[str], texts: Sequence[str]) -> Path:
    """Official responses format, one ``{"prompt", "response"}`` per line (raw text, think blocks kept)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as handle:
        for prompt, text in zip(prompts, texts):
            handle.write(json.dumps({"prompt": prompt, "response": text}, ensure_ascii=False) + "\n")
    return target


def examples(instructions: Sequence[Instruction], scored: IFBenchReport,
             raw: Mapping[str, str]) -> list[dict]:
    """Per-prompt records in the official output's field names (plus ``key`` and the raw response)."""
    lookup = response_lookup(raw)
    keys = {i.prompt: i.id for i in instructions}
    records = []
    for s, lo in zip(scored.report.strict, scored.report.loose):
        original = find_response(s.prompt, lookup)
        records.append(
            {
                "key": keys.get(s.prompt),
                "prompt": s.prompt,
                "response": original if original is not None else "",
                "missing_response": original is None,
                "scored_response": s.response,
                "instruction_id_list": s.instruction_id_list,
                "follow_instruction_list_strict": s.follow_instruction_list,
                "follow_instruction_list_loose": lo.follow_instruction_list,
                "follow_all_instructions_strict": s.follow_all_instructions,
                "follow_all_instructions_loose": lo.follow_all_instructions,
            }
        )
    return records
