"""Parsing judge answers: lenient about wrapping, strict about one verdict per constraint."""

from __future__ import annotations

import pytest

from ifpo.judge import (
    ConstraintJudgement,
    JudgeRequest,
    MalformedAnswer,
    build_judge_messages,
    parse_verdicts,
)


def test_plain_json_in_order() -> None:
    text = (
        '{"results": [{"id": 1, "reason": "ok", "satisfied": true}, '
        '{"id": 2, "reason": "no", "satisfied": false}]}'
    )
    assert parse_verdicts(text, 2) == ((True, False), ("ok", "no"))


def test_fenced_json_with_prose_and_shuffled_ids() -> None:
    text = (
        "Here is my grading:\n```json\n"
        '{"results": [{"id": 2, "satisfied": "no", "reason": "b"}, {"id": 1, "satisfied": "YES", "reason": '
        '"a"}]}'
        "\n```\nHope this helps."
    )
    assert parse_verdicts(text, 2) == ((True, False), ("a", "b"))


def test_bare_list_and_missing_ids_use_position() -> None:
    assert parse_verdicts('[{"satisfied": 1}, {"satisfied": 0}]', 2) == ((True, False), ("", ""))


@pytest.mark.parametrize(
    "text, message",
    [
        ("no json here", "no JSON object"),
        ('{"verdicts": []}', "no 'results' list"),
        ('{"results": [{"id": 1, "satisfied": true}]}', "1 verdicts for 2 constraints"),
        (
            '{"results": [{"id": 1, "satisfied": true}, {"id": 1, "satisfied": true}]}',
            "out of range or repeated",
        ),
        (
            '{"results": [{"id": 1, "satisfied": true}, {"id": 3, "satisfied": true}]}',
            "out of range or repeated",
        ),
        ('{"results": [{"id": 1, "satisfied": true}, {"id": 2, "satisfied": "maybe"}]}', "not a boolean"),
        ('{"results": [{"id": 1, "satisfied": true}, {"id": 2}]}', "missing 'satisfied'"),
        ('{"results": [{"id": 1, "satisfied": true}, "yes"]}', "not an object"),
    ],
)
def test_malformed_answers_are_rejected(text: str, message: str) -> None:
    with pytest.raises(MalformedAnswer, match=message):
        parse_verdicts(text, 2)


def test_prompt_numbers_every_constraint_and_includes_response() -> None:
    messages = build_judge_messages(JudgeRequest("Do X.", "I did X.", ("first rule", "second rule")))
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "Do X." in user and "I did X." in user
    assert "1. first rule\n2. second rule" in user


def test_request_needs_constraints() -> None:
    with pytest.raises(ValueError, match="at least one constraint"):
        JudgeRequest("i", "r", ())


def test_judgement_round_trips_through_dict() -> None:
    ok = ConstraintJudgement(("a", "b"), (True, False), ("x", "y"))
    failed = ConstraintJudgement.failure(["a"], "boom")
    assert ConstraintJudgement.from_dict(ok.to_dict()) == ok
    assert ConstraintJudgement.from_dict(failed.to_dict()) == failed
    assert ok.ok and not failed.ok
