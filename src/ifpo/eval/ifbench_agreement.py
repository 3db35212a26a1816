"""Per-instruction agreement between our IFBench scoring and the official evaluator's output files.

``python -m ifpo.eval.ifbench_agreement --data IFBench_test.jsonl --responses sample_output.jsonl
--official eval_results_strict.jsonl eval_results_loose.jsonl`` scores the responses with
:func:`~ifpo.eval.ifbench.score_ifbench_official` and compares every instruction verdict with the
official ``eval_results_{strict,loose}.jsonl`` (matched by prompt, surrounding whitespace ignored).
Instructions we cannot check here (missing NLTK data) are reported apart, never counted as agreeing.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ifpo.constraints import ConstraintFormatError, Instruction, load_ifeval_jsonl
from ifpo.eval.ifbench import score_ifbench_official
from ifpo.eval.rule_scoring import load_responses_jsonl
from ifpo.io.jsonl import BadLine, read_jsonl


@dataclass
class Agreement:
    """Instruction id -> verdicts compared, agreeing, and not checkable here (per mode)."""

    compared: Counter[str] = field(default_factory=Counter)
    agreed: Counter[str] = field(default_factory=Counter)
    unchecked: Counter[str] = field(default_factory=Counter)
    disagreements: list[tuple[str, str]] = field(default_factory=list)  # (prompt head, instruction id)

    @property
    def rate(self) -> float:
        total = sum(self.compared.values())
        return sum(self.agreed.values()) / total if total else 0.0


def read_official_results(path: str | Path) -> dict[str, dict]:
    """Official ``eval_results_*.jsonl`` rows keyed by stripped prompt."""
    rows: dict[str, dict] = {}
    for line_no, row in read_jsonl(path, check_unicode=False):
        if isinstance(row, BadLine):
            raise ConstraintFormatError(row.problem, source=str(path), line=line_no, reason=row.reason)
        for name in ("prompt", "instruction_id_list", "follow_instruction_list"):
            if name not in row:
                raise ConstraintFormatError(
                    f"missing {name!r}",
                    source=str(path),
                    line=line_no,
                    field=name,
                    reason="missing_field",
                )
        rows[row["prompt"].strip()] = row
    return rows


def compare(
    instructions: Sequence[Instruction], responses: dict[str, str], official: dict[str, dict], loose: bool
) -> Agreement:
    """Compare our verdicts with the official rows for every prompt present in both."""
    scored = score_ifbench_official(instructions, responses, on_missing="skip")
    ours = {e.prompt.strip(): e for e in (scored.report.loose if loose else scored.report.strict)}
    by_prompt = {i.prompt.strip(): i for i in instructions}
    result = Agreement()
    for prompt, row in official.items():
        if prompt not in ours:
            continue
        instruction = by_prompt[prompt]
        for index, (kind, verdict) in enumerate(
            zip(row["instruction_id_list"], row["follow_instruction_list"])
        ):
            if _needs_missing_resource(instruction, index, responses):
                result.unchecked[kind] += 1
                continue
            result.compared[kind] += 1
            if ours[prompt].follow_instruction_list[index] == verdict:
                result.agreed[kind] += 1
            else:
                result.disagreements.append((prompt[:60], kind))
    return result


def _needs_missing_resource(instruction: Instruction, index: int, responses: dict[str, str]) -> bool:
    one = Instruction(instruction.prompt, (instruction.constraints[index],), instruction.id)
    return bool(score_ifbench_official([one], responses, on_missing="skip").resource_errors)


def format_table(strict: Agreement, loose: Agreement) -> str:
    lines = [f"{'instruction id':40s} {'strict':>9s} {'loose':>9s} {'not checkable here':>19s}"]
    for kind in sorted(set(strict.compared) | set(strict.unchecked)):
        lines.append(
            f"{kind:40s} {strict.agreed[kind]:>4d}/{strict.compared[kind]:<4d} "
            f"{loose.agreed[kind]:>4d}/{loose.compared[kind]:<4d} {strict.unchecked[kind]:>19d}"
        )
    lines.append(
        f"{'all':40s} {sum(strict.agreed.values()):>4d}/{sum(strict.compared.values()):<4d} "
        f"{sum(loose.agreed.values()):>4d}/{sum(loose.compared.values()):<4d} "
        f"{sum(strict.unchecked.values()):>19d}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="IFBench_test.jsonl (official format)")
    parser.add_argument(
        "--responses", required=True, help='{"prompt", "response"} JSONL, e.g. sample_output.jsonl'
    )
    parser.add_argument(
        "--official",
        nargs=2,
        required=True,
        metavar=("STRICT", "LOOSE"),
        help="the official evaluator's eval_results_strict.jsonl and eval_results_loose.jsonl",
    )
    parser.add_argument("--fail-on-disagreement", action="store_true", help="exit 1 if any verdict differs")
    args = parser.parse_args(argv)
    instructions, _ = load_ifeval_jsonl(args.data)
    responses = load_responses_jsonl(args.responses)
    strict = compare(instructions, responses, read_official_results(args.official[0]), loose=False)
    loose = compare(instructions, responses, read_official_results(args.official[1]), loose=True)
    print(format_table(strict, loose))
    for mode, result in (("strict", strict), ("loose", loose)):
        for prompt, kind in result.disagreements:
            print(f"disagree ({mode}): {kind} on {prompt!r}")
    disagree = bool(strict.disagreements or loose.disagreements)
    return 1 if disagree and args.fail_on_disagreement else 0


if __name__ == "__main__":
    raise SystemExit(main())
