import random

import pytest
from constraint_samples import SAMPLE_KWARGS

from ifpo.constraints import (
    IFEVAL_KIND_IDS,
    KINDS,
    Constraint,
    ConstraintError,
    get_kind,
    load_ifeval_jsonl,
)


def test_all_25_ifeval_ids_are_registered_and_checkable():
    assert len(IFEVAL_KIND_IDS) == 25
    assert set(IFEVAL_KIND_IDS) == set(SAMPLE_KWARGS)
    for kind in IFEVAL_KIND_IDS:
        assert get_kind(kind).checkable
        assert Constraint(kind, SAMPLE_KWARGS[kind]).check("Some answer.") in (True, False)


def test_every_ifeval_record_loads_and_renders(ifeval_input_path):
    instructions, skipped = load_ifeval_jsonl(ifeval_input_path)
    assert len(instructions) == 541 and not skipped
    kinds_seen = {c.kind for i in instructions for c in i.constraints}
    assert kinds_seen == set(IFEVAL_KIND_IDS)
    for instruction in instructions:
        for constraint in instruction.constraints:
            assert constraint.render(0).strip()


@pytest.mark.parametrize("kind", sorted(SAMPLE_KWARGS))
def test_render_is_deterministic_and_has_paraphrases(kind):
    c = Constraint(kind, SAMPLE_KWARGS[kind])
    texts = {c.render(i) for i in range(len(c.spec.templates))}
    assert len(texts) == len(c.spec.templates) >= 2
    assert c.render(0) == c.render(len(c.spec.templates))
    assert c.render(random.Random(7)) == c.render(random.Random(7))
    for value in SAMPLE_KWARGS[kind].values():
        if isinstance(value, (int, str)) and kind != "combination:repeat_prompt" and value not in ("fr",):
            assert str(value) in c.render(0)


def test_language_renders_name_not_code():
    assert "French" in Constraint("language:response_language", {"language": "fr"}).render(0)


def test_strict_and_loose_follow_ifeval_definition():
    end = Constraint("startend:end_checker", {"end_phrase": "Any other questions?"})
    response = "Rivers are long. Any other questions?\nHope this helps!"
    assert end.check(response) is False
    assert end.check(response, loose=True) is True  # dropping the last line passes
    lower = Constraint("change_case:english_lowercase", {})
    bold = "**Sure thing**\nthis answer is all in lowercase letters and words."
    assert lower.check(bold) is False
    assert lower.check(bold, loose=True) is True  # dropping the first line passes
    comma = Constraint("punctuation:no_comma", {})
    assert comma.check("") is False and comma.check("   ", loose=True) is False  # empty fails


def test_letter_outside_checker_domain_never_passes():
    c = Constraint(
        "keywords:letter_frequency", {"letter": "#", "let_frequency": 1, "let_relation": "at least"}
    )
    assert c.out_of_domain_reason
    assert c.check("#### hashtags #a #b") is False
    assert c.check("#### hashtags #a #b", loose=True) is False
    ok = Constraint(
        "keywords:letter_frequency", {"letter": "b", "let_frequency": 1, "let_relation": "at least"}
    )
    assert ok.out_of_domain_reason is None and ok.check("abc")


def test_constraint_is_frozen_hashable_and_copies_kwargs():
    kwargs = {"keywords": ["a1"]}
    c = Constraint("keywords:existence", kwargs)
    kwargs["keywords"].append("b2")
    assert list(c.kwargs["keywords"]) == ["a1"]
    assert c == Constraint("keywords:existence", {"keywords": ["a1"]})
    assert len({c, Constraint("keywords:existence", {"keywords": ["a1"]})}) == 1
    with pytest.raises(TypeError):
        c.kwargs["keywords"] = []  # type: ignore[index]
    assert c.to_dict() == {"kind": "keywords:existence", "kwargs": {"keywords": ["a1"]}}


@pytest.mark.parametrize(
    ("kind", "kwargs", "field", "reason"),
    [
        ("nope:kind", {}, None, "unknown_kind"),
        ("length_constraints:number_words", {"num_words": 5}, "relation", "missing_parameter"),
        (
            "length_constraints:number_words",
            {"num_words": 5, "relation": "at least", "x": 1},
            "x",
            "unknown_parameter",
        ),
        (
            "length_constraints:number_words",
            {"num_words": "5", "relation": "at least"},
            "num_words",
            "bad_type",
        ),
        ("length_constraints:number_words", {"num_words": 5, "relation": "about"}, "relation", "bad_value"),
        ("keywords:existence", {"keywords": []}, "keywords", "bad_type"),
        ("punctuation:no_comma", {"anything": 1}, "anything", "unknown_parameter"),
    ],
)
def test_bad_constraints_raise_naming_the_field(kind, kwargs, field, reason):
    with pytest.raises(ConstraintError) as info:
        Constraint(kind, kwargs)
    assert info.value.field == field
    assert info.value.reason == reason


def test_registry_has_free_text_and_ifbench():
    assert not KINDS["free_text"].checkable
    assert KINDS["count:word_count_range"].benchmark == "ifbench"
