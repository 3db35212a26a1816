import random
import string

import pytest
from constraint_samples import SAMPLE_KWARGS

from ifpo.constraints import IFEVAL_KIND_IDS, Constraint

EXACT = {
    "length_constraints:number_words": ("relation", "num_words", [1, 5, 20, 40]),
    "length_constraints:number_sentences": ("relation", "num_sentences", [1, 2, 4, 8]),
    "keywords:frequency": ("relation", "frequency", [1, 2, 3, 6]),
    "keywords:letter_frequency": ("let_relation", "let_frequency", [1, 3, 10, 25]),
    "change_case:capital_word_frequency": ("capital_relation", "capital_frequency", [1, 2, 4, 9]),
}
WORDS = ["river", "stone", "Apple", "NASA", "LOUD", "quick", "Dr.", "e.g.", "sun", "RIVER", "q", "it's"]


def _random_response(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(0, 9)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 9))]
        sentences.append(" ".join(words) + rng.choice([".", "!", "?", "", "..."]))
    return rng.choice([" ", "\n", "\n\n"]).join(sentences)


@pytest.mark.parametrize("kind", sorted(EXACT))
def test_exact_reverse_is_a_complement_on_generated_responses(kind):
    relation_param, count_param, counts = EXACT[kind]
    rng = random.Random(kind)
    responses = [_random_response(rng) for _ in range(120)]
    base = dict(SAMPLE_KWARGS[kind])
    checked = 0
    for relation in ("less than", "at least"):
        for count in counts:
            c = Constraint(kind, {**base, relation_param: relation, count_param: count})
            r = c.reverse()
            assert r is not None and c.reverse_exactness == "exact"
            assert r.kind == kind and r.reverse() == c
            for response in responses:
                if not response.strip():
                    continue  # IFEval fails every instruction on an empty response
                assert c.check(response) != r.check(response), (c, response)
                checked += 1
    assert checked > 500


def test_both_outcomes_occur_for_exact_reverse():
    rng = random.Random(0)
    c = Constraint("length_constraints:number_words", {"relation": "at least", "num_words": 20})
    outcomes = {c.check(_random_response(rng)) for _ in range(200)}
    assert outcomes == {True, False}


def test_approximate_pairs():
    ex = Constraint("keywords:existence", {"keywords": ["river"]})
    assert ex.reverse_exactness == "approximate"
    assert ex.reverse() == Constraint("keywords:forbidden_words", {"forbidden_words": ["river"]})
    assert ex.reverse().reverse() == ex
    low = Constraint("change_case:english_lowercase", {})
    assert low.reverse() == Constraint("change_case:english_capital", {})
    assert low.reverse().reverse_exactness == "approximate"
    # approximate: a mixed-case answer satisfies neither side
    mixed = "This Answer Has Mixed Case Letters In English Words."
    assert not low.check(mixed) and not low.reverse().check(mixed)


def test_kinds_without_reverse_say_so():
    without = [k for k in IFEVAL_KIND_IDS if Constraint(k, SAMPLE_KWARGS[k]).reverse() is None]
    assert "punctuation:no_comma" in without and "detectable_format:title" in without
    for kind in without:
        assert Constraint(kind, SAMPLE_KWARGS[kind]).reverse_exactness is None
    assert len(without) == 25 - 9


@pytest.mark.parametrize("kind", sorted(SAMPLE_KWARGS))
def test_every_ifeval_kind_revises_to_a_different_valid_constraint(kind):
    c = Constraint(kind, SAMPLE_KWARGS[kind])
    for seed in range(5):
        revised = c.revise(random.Random(seed))
        assert isinstance(revised, Constraint) and revised != c
        assert revised.checkable
    assert c.revise(random.Random(3)) == c.revise(random.Random(3))


SYNTHETIC_CASES = [
    # (constraint, a response satisfying it that violates at least one revision)
    (Constraint("change_case:english_lowercase", {}), "this is a calm answer about rivers and stones."),
    (Constraint("change_case:english_capital", {}), "THIS IS A LOUD ANSWER ABOUT RIVERS AND STONES."),
    (Constraint("punctuation:no_comma", {}), "Rivers flow and stones sit, but not here"),
    (Constraint("keywords:existence", {"keywords": ["river"]}), "The river is long."),
    (Constraint("keywords:forbidden_words", {"forbidden_words": ["river"]}), "The stone is grey."),
    (Constraint("startend:end_checker", {"end_phrase": "Any other questions?"}), "Hi. Any other questions?"),
    (Constraint("length_constraints:number_words", {"relation": "at least", "num_words": 4}),
     "one two three four"),
    (Constraint("length_constraints:number_words", {"relation": "less than", "num_words": 8}),
     "one two three four five six seven"),
    (Constraint("detectable_format:number_bullet_lists", {"num_bullets": 2}), "* first\n* second"),
    (Constraint("startend:quotation", {}), '"A quoted answer."'),
]


@pytest.mark.parametrize(("constraint", "response"), SYNTHETIC_CASES, ids=lambda x: str(x)[:40])
def test_revisions_of_synthetic_kinds_can_be_violated_by_a_satisfying_response(constraint, response):
    if constraint.kind == "punctuation:no_comma":
        response = response.replace(",", "")
    assert constraint.check(response) is True
    violated = []
    for seed in range(6):
        revised = constraint.revise(random.Random(seed))
        # the answer happens to use the newly forbidden word
        if constraint.kind == "keywords:forbidden_words":
            (new_word,) = set(revised.kwargs["forbidden_words"]) - set(constraint.kwargs["forbidden_words"])
            response = f"The stone is {new_word}."
            assert constraint.check(response) is True
        violated.append(revised.check(response) is False)
    assert any(violated)


def test_letter_revision_changes_letter_or_count():
    c = Constraint(
        "keywords:letter_frequency", {"letter": "a", "let_frequency": 4, "let_relation": "at least"}
    )
    revised = {c.revise(random.Random(s)) for s in range(10)}
    assert all(r.kwargs["letter"] in string.ascii_lowercase for r in revised)
    assert c not in revised
