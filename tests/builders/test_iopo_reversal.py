"""IOPO quads by reversal: x2 = x1 with the constraints y2 fails reversed (hand-made vectors, then end to
end)."""

from __future__ import annotations

import json
from pathlib import Path

from ifpo.builders import BuildStats, ReversedQuad, reversal_quad, run_build
from ifpo.builders.judging import JudgeJob, ResponseJudge
from ifpo.constraints import Constraint
from ifpo.data.records import validate_record
from ifpo.sampling import SyntheticWriterSampler

WORDS = Constraint(
    "length_constraints:number_words", {"relation": "less than", "num_words": 10}
)  # exact reverse
R_WORDS = Constraint("length_constraints:number_words", {"relation": "at least", "num_words": 10})
APPLES = Constraint(
    "keywords:frequency", {"keyword": "apple", "frequency": 2, "relation": "at least"}
)  # exact
NO_COMMA = Constraint("punctuation:no_comma", {})  # no reverse
X1 = [WORDS, APPLES, NO_COMMA]

MEETS_ALL = "apple apple is good"  # 4 words, two apples, no comma
FAILS_WORDS = "one two three four five six seven eight nine ten eleven apple apple"  # 13 words
FAILS_WORDS_AND_COMMA = "apple, apple, and many more words to go past the ten word limit here"


def _reverse(c: Constraint) -> Constraint | None:
    return c.reverse()


def _vectors(responses: list[str]) -> list[tuple[bool, ...]]:
    return ResponseJudge().vectors(
        [JudgeJob([{"role": "user", "content": "hi"}], tuple(X1), r) for r in responses]
    )


def test_vectors_of_the_hand_made_answers() -> None:
    assert _vectors([MEETS_ALL, FAILS_WORDS, FAILS_WORDS_AND_COMMA]) == [
        (True, True, True),
        (False, True, True),
        (False, True, False),
    ]


def test_y2_with_fewest_failures_gives_the_quad() -> None:
    responses = [FAILS_WORDS_AND_COMMA, MEETS_ALL, FAILS_WORDS]
    stats = BuildStats()
    quad = reversal_quad(X1, _vectors(responses), responses, _reverse, stats)
    assert quad == ReversedQuad(y1=1, y2=2, x2=(R_WORDS, APPLES, NO_COMMA), reversed_positions=(0,))
    assert stats.skipped == {}


def test_failed_constraint_without_exact_reverse_rejects_the_candidate() -> None:
    responses = [MEETS_ALL, FAILS_WORDS_AND_COMMA]
    stats = BuildStats()
    assert reversal_quad(X1, _vectors(responses), responses, _reverse, stats) is None
    assert stats.skipped == {"reverse_candidate:no_exact_reverse": 1, "no_y2_gives_a_verified_quad": 1}


def test_a_wrong_judgement_is_caught_by_re_verification() -> None:
    # The vector claims the second answer fails the word limit; it does not, so it fails the reversed x2.
    responses = [MEETS_ALL, "apple apple again"]
    stats = BuildStats()
    lying = [(True, True, True), (False, True, True)]
    assert reversal_quad(X1, lying, responses, _reverse, stats) is None
    assert stats.skipped == {"reverse_candidate:y2_fails_x2": 1, "no_y2_gives_a_verified_quad": 1}


def test_approximate_reverses_only_when_allowed_and_still_re_verified() -> None:
    lower = Constraint("change_case:english_lowercase", {})  # approximate reverse: all capitals
    upper = lower.reverse()
    responses = ["all lowercase here", "Not Lowercase", "ALL CAPITALS HERE"]
    vectors = [(True,), (False,), (False,)]
    stats = BuildStats()
    assert reversal_quad([lower], vectors, responses, _reverse, stats) is None
    assert stats.skipped["reverse_candidate:no_exact_reverse"] == 2
    stats = BuildStats()
    quad = reversal_quad([lower], vectors, responses, _reverse, stats, allow_approximate=True)
    assert quad == ReversedQuad(y1=0, y2=2, x2=(upper,), reversed_positions=(0,))
    assert stats.skipped == {"reverse_candidate:y2_fails_x2": 1}  # "Not Lowercase" is not all capitals


def test_instruction_level_reasons() -> None:
    stats = BuildStats()
    assert reversal_quad(X1, _vectors([FAILS_WORDS]), [FAILS_WORDS], _reverse, stats) is None
    assert reversal_quad(X1, _vectors([MEETS_ALL]), [MEETS_ALL], _reverse, stats) is None
    assert stats.skipped == {"no_response_meets_x1": 1, "no_response_violates_x1": 1}


def _meets(constraints: list[dict], text: str) -> list[bool]:
    return [bool(Constraint(c["kind"], c["kwargs"]).check(text)) for c in constraints]


def test_build_with_x2_reverse_writes_only_verified_quads(tmp_path: Path) -> None:
    out = tmp_path / "iopo_reverse.jsonl"
    cfg = {
        "name": "iopo",
        "x2": "reverse",
        "source": "synthetic",
        "synthetic": {"num_tasks": 16, "split": "train", "seed": 1},
        "system_prompt": "You are a helpful assistant.",
        "num_samples": 6,
        "chunk_size": 4,
        "output": str(out),
        "progress": False,
    }
    stats = run_build(cfg, SyntheticWriterSampler(0.7), seed=0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == stats.kept > 0
    per_instruction = {k: v for k, v in stats.skipped.items() if not k.startswith("reverse_candidate:")}
    assert stats.instructions == 16 and stats.kept + sum(per_instruction.values()) == 16
    for row in rows:
        validate_record(row, "quad", str(out), 1)
        y1, y2 = row["y1"][0]["content"], row["y2"][0]["content"]
        meta = row["meta"]
        x1, x2, reversed_at = meta["constraints_x1"], meta["constraints_x2"], meta["reversed_positions"]
        assert meta["x2"] == "reverse" and reversed_at and row["x1"] != row["x2"]
        assert all(_meets(x1, y1)) and all(_meets(x2, y2))
        y1_on_x2, y2_on_x1 = _meets(x2, y1), _meets(x1, y2)
        assert [
            k for k, ok in enumerate(y1_on_x2) if not ok
        ] == reversed_at  # y1 fails exactly the reversed ones
        assert not all(y2_on_x1)
        assert all(x2[k] == x1[k] for k in range(len(x1)) if k not in reversed_at)
