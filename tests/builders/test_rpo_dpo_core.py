"""RPO pairs and DPO choices on hand-made judgement vectors (expected results written out by hand)."""

from __future__ import annotations

import pytest

from ifpo.builders import BuildStats, dpo_choice, rpo_pairs
from ifpo.builders.judging import JudgeJob, ResponseJudge
from ifpo.constraints import Constraint

A = Constraint("length_constraints:number_words", {"relation": "less than", "num_words": 50})  # exact reverse
R_A = Constraint("length_constraints:number_words", {"relation": "at least", "num_words": 50})
B = Constraint("keywords:existence", {"keywords": ["banana"]})  # approximate reverse
R_B = Constraint("keywords:forbidden_words", {"forbidden_words": ["banana"]})
C = Constraint("punctuation:no_comma", {})  # no reverse


def _reverse(c: Constraint) -> Constraint | None:
    return c.reverse()


def _as_tuples(pairs):
    return [(p.chosen, p.rejected, p.margin, list(p.constraints)) for p in pairs]


def test_rpo_pairs_by_hand() -> None:
    stats = BuildStats()
    vectors = [(True, True), (True, False), (False, False), (True, True)]  # #3 duplicates #0
    pairs = rpo_pairs([A, B], vectors, _reverse, min_margin=0, stats=stats)
    assert _as_tuples(pairs) == [
        (0, 1, 1, [A, B]), (1, 0, 1, [A, R_B]),
        (0, 2, 2, [A, B]), (2, 0, 2, [R_A, R_B]),   # both fail nothing / both reversed on #2's side
        (1, 2, 1, [A, R_B]), (2, 1, 1, [R_A, R_B]),  # B fails on both sides: reversed on both
    ]
    assert stats.skipped == {"duplicate_judgement_vector": 1}


def test_rpo_min_margin_is_strict() -> None:
    stats = BuildStats()
    vectors = [(True, True), (True, False), (False, False)]
    pairs = rpo_pairs([A, B], vectors, _reverse, min_margin=1, stats=stats)
    assert _as_tuples(pairs) == [(0, 2, 2, [A, B]), (2, 0, 2, [R_A, R_B])]
    assert stats.skipped == {
        "margin_at_most_min_margin": 4
    }  # two unordered pairs with g == 1, both directions
    assert rpo_pairs([A, B], vectors, _reverse, min_margin=2, stats=BuildStats()) == []


def test_rpo_skips_and_counts_pairs_needing_a_missing_reverse() -> None:
    stats = BuildStats()
    pairs = rpo_pairs([A, C], [(True, False), (False, True)], _reverse, min_margin=0, stats=stats)
    assert _as_tuples(pairs) == [(1, 0, 2, [R_A, C])]
    assert stats.skipped == {"no_reverse": 1}


def test_rpo_checks_chosen_against_rewritten_instruction() -> None:
    lower = Constraint("change_case:english_lowercase", {})
    responses = ["this is a plain english sentence about the weather today.", "Das ist ein deutscher Satz."]
    vectors = ResponseJudge().vectors(
        [JudgeJob([{"role": "user", "content": "hi"}], (lower,), r) for r in responses]
    )
    assert vectors == [(True,), (False,)]
    stats = BuildStats()
    pairs = rpo_pairs([lower], vectors, _reverse, 0, stats, responses)
    # #1 fails lowercase but is not all capitals either: the approximate reverse is unmet -> skipped.
    assert _as_tuples(pairs) == [(0, 1, 1, [lower])]
    assert stats.skipped == {"approximate_reverse_not_met": 1}
    with pytest.raises(AssertionError, match="rewritten instruction"):
        # An exact reverse the chosen answer does not meet means wrong judgements: a bug, not a skip.
        rpo_pairs([A], [(False,), (True,)], _reverse, 0, BuildStats(), ["short answer", "also short"])


def test_dpo_choice_and_ties() -> None:
    stats = BuildStats()
    assert dpo_choice([(True, False), (False, True)], stats) is None
    assert dpo_choice([(True, True, False), (False, True, False), (True, True, False)], stats) == (0, 1)
    assert dpo_choice([(True,)], stats) is None
    assert stats.skipped == {"tie": 1, "fewer_than_two_responses": 1}
