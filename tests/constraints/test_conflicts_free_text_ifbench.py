import itertools

import pytest

from ifpo.constraints import (
    IFBENCH_KIND_IDS,
    IFEVAL_KIND_IDS,
    REVERSE_RULES_PROMPT,
    Constraint,
    ConstraintError,
    FreeTextReverser,
    ResourceUnavailableError,
    conflicts,
    free_text,
    parse_ifeval_record,
    reverse_free_text,
)
from ifpo.constraints.free_text import reverse_prompt


def test_conflicts_follow_ifeval_table_and_are_symmetric():
    assert conflicts("change_case:english_lowercase", "change_case:english_capital")
    assert conflicts("language:response_language", "keywords:existence")
    assert conflicts("detectable_format:json_format", "punctuation:no_comma")
    assert not conflicts("detectable_format:json_format", "keywords:existence")
    assert not conflicts("punctuation:no_comma", "keywords:existence")
    assert conflicts("startend:quotation", "detectable_format:title")
    for a, b in itertools.product(IFEVAL_KIND_IDS, repeat=2):
        assert conflicts(a, b) == conflicts(b, a)
    assert all(conflicts(k, k) for k in IFEVAL_KIND_IDS)


def test_conflicts_for_other_kinds_and_unknown_ids():
    assert conflicts("count:word_count_range", "count:word_count_range")
    assert not conflicts("count:word_count_range", "punctuation:no_comma")
    assert not conflicts("free_text", "free_text")
    with pytest.raises(ConstraintError):
        conflicts("bogus:id", "punctuation:no_comma")


def test_free_text_is_not_rule_checkable():
    c = free_text("Mention the author's name in the first sentence.")
    assert not c.checkable and c.check("anything") is None and c.check("x", loose=True) is None
    assert c.reverse() is None and c.reverse_exactness is None and c.revise() is None
    assert c.render(3) == "Mention the author's name in the first sentence."


def test_free_text_reverser_hook():
    calls = []

    def fake_llm(text: str) -> str:
        calls.append(text)
        return "Do not mention the author's name in the first sentence."

    assert isinstance(fake_llm, FreeTextReverser)
    original = free_text("Mention the author's name in the first sentence.")
    reversed_c = reverse_free_text(original, fake_llm)
    assert reversed_c.kind == "free_text" and reversed_c.kwargs["text"].startswith("Do not")
    assert calls == [original.kwargs["text"]]
    with pytest.raises(ConstraintError):
        reverse_free_text(original, lambda text: text)  # unchanged is not a reverse
    with pytest.raises(ConstraintError):
        reverse_free_text(Constraint("punctuation:no_comma", {}), fake_llm)


def test_reverse_prompt_states_the_rpo_rules():
    text = reverse_prompt("Use at least 3 examples.")
    assert "Use at least 3 examples." in text
    for rule in ('"must not X"', "at most 3", "may"):
        assert rule in REVERSE_RULES_PROMPT


def test_ifbench_records_parse_and_check():
    record = {
        "key": "b1",
        "prompt": "Describe a cat.",
        "instruction_id_list": ["count:word_count_range", "words:palindrome"],
        "kwargs": [{"min_words": 3, "max_words": 6, "N": None}, {}],
    }
    instruction = parse_ifeval_record(record)
    assert len(IFBENCH_KIND_IDS) > 50
    assert instruction.check("a cat sat on mats") == [True, False]
    ten_palindromes = " ".join(["racecar", "level", "kayak", "civic", "radar"] * 2)
    assert instruction.check(ten_palindromes) == [False, True]
    assert instruction.check("racecar level kayak civic radar") == [True, False]
    assert instruction.check("one two") == [False, False]
    assert instruction.constraints[0].render().strip()
    assert instruction.constraints[0].reverse() is None
    revised = instruction.constraints[0].revise()
    assert revised is not None and revised != instruction.constraints[0]


def test_ifbench_checker_needing_missing_nltk_data_raises_clearly():
    c = Constraint("ratio:stop_words", {"percentage": 30})
    try:
        c.check("the cat is on the mat")
    except ResourceUnavailableError as exc:
        assert "stopwords" in str(exc) and exc.reason == "resource_unavailable"
    # (passes silently where the stopwords corpus happens to be installed)
