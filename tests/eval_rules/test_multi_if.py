import csv
import json

import pytest

from ifpo.constraints import ConstraintError, ConstraintFormatError
from ifpo.eval.multi_if import conversations_for_turn, load_multi_if_csv, score_multi_if

COLUMNS = ["key", "language"] + [f"turn_{k}_{part}" for k in (1, 2, 3)
                                 for part in ("prompt", "instruction_id_list", "kwargs")]
LONG = "the rivers flow quietly to the sea and the fish swim happily in the water"


def _row(key, language, turns):
    row = {"key": key, "language": language}
    for k in (1, 2, 3):
        prompt, ids, kwargs = turns[k - 1] if k <= len(turns) else ("", None, None)
        row[f"turn_{k}_prompt"] = prompt
        row[f"turn_{k}_instruction_id_list"] = "" if ids is None else json.dumps(ids)
        # Multi-IF stores each kwargs entry as a JSON string inside a JSON list.
        row[f"turn_{k}_kwargs"] = "" if kwargs is None else json.dumps([json.dumps(kw) for kw in kwargs])
    return row


ROWS = [
    _row("c1", "English", [
        ("Write about rivers.", ["punctuation:no_comma"], [{}]),
        ("Now in lowercase.", ["punctuation:no_comma", "change_case:english_lowercase"], [{}, {}]),
        ("End with Bye.", ["punctuation:no_comma", "change_case:english_lowercase", "startend:end_checker"],
         [{}, {}, {"end_phrase": "Bye."}]),
    ]),
    _row("c2", "French", [
        (json.dumps({"role": "user", "content": "Écris trois mots."}), ["length_constraints:number_words"],
         [{"relation": "at least", "num_words": 3}]),
        ("Sans virgule.", ["length_constraints:number_words", "punctuation:no_comma"],
         [{"relation": "at least", "num_words": 3}, {}]),
    ]),
]
RESPONSES = {
    "c1": ["rivers flow to the sea", "**Note**\n" + LONG, LONG + "\nBye."],
    "c2": ["un deux trois", "un, deux"],
}


def _write(path, rows, columns=COLUMNS):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture()
def conversations(tmp_path):
    return load_multi_if_csv(_write(tmp_path / "multi_if.csv", ROWS))


def test_parse(conversations):
    assert [c.id for c in conversations] == ["c1", "c2"]
    assert [len(c.turns) for c in conversations] == [3, 2]
    assert conversations[1].turns[0].prompt == "Écris trois mots."
    assert conversations[0].turns[2].constraints[2].kwargs == {"end_phrase": "Bye."}


def test_scores_match_hand_computed_values(conversations):
    report = score_multi_if(conversations, RESPONSES)
    # turn 1: everything follows
    # turn 2: prompt strict 0/2, instr strict 1/4, prompt loose 1/2, instr loose 2/4
    # turn 3 (c1 only): prompt strict 0, instr strict 2/3, prompt loose 1, instr loose 3/3
    expected = {1: 1.0, 2: (0 + 0.25 + 0.5 + 0.5) / 4, 3: (0 + 2 / 3 + 1 + 1) / 4}
    assert report.turn_scores() == pytest.approx(expected)
    by_language = report.language_scores()
    assert sorted(by_language) == ["English", "French"]
    assert by_language["English"] == pytest.approx({1: 1.0, 2: (0 + 0.5 + 1 + 1) / 4, 3: expected[3]})
    assert by_language["French"] == pytest.approx({1: 1.0, 2: 0.0})


def test_messages_for_turn_use_the_models_own_responses(conversations):
    batch = conversations_for_turn(conversations, 3, {"c1": ["first answer", "second answer"]})
    assert [cid for cid, _ in batch] == ["c1"]
    assert batch[0][1] == [
        {"role": "user", "content": "Write about rivers."},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "Now in lowercase."},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "End with Bye."},
    ]
    first = conversations_for_turn(conversations, 1, {})
    assert [m for _, m in first][1] == [{"role": "user", "content": "Écris trois mots."}]
    with pytest.raises(ValueError):
        conversations_for_turn(conversations, 2, {"c1": []})


def test_missing_responses_are_named(conversations):
    with pytest.raises(ConstraintFormatError, match="c2"):
        score_multi_if(conversations, {"c1": RESPONSES["c1"], "c2": ["only one"]})


def test_malformed_rows_name_line_and_column(tmp_path):
    bad_json = dict(ROWS[1], turn_2_kwargs="[not json")
    with pytest.raises(ConstraintFormatError) as info:
        load_multi_if_csv(_write(tmp_path / "a.csv", [ROWS[0], bad_json]))
    assert (info.value.line, info.value.field, info.value.reason) == (3, "turn_2_kwargs", "invalid_json")

    unknown = dict(ROWS[0], turn_1_instruction_id_list=json.dumps(["bogus:id"]))
    with pytest.raises(ConstraintError) as info:
        load_multi_if_csv(_write(tmp_path / "b.csv", [unknown]))
    assert (info.value.line, info.value.field) == (2, "turn_1_instruction_id_list[0]")

    missing_cell = dict(ROWS[0], turn_2_kwargs="")
    with pytest.raises(ConstraintFormatError) as info:
        load_multi_if_csv(_write(tmp_path / "c.csv", [missing_cell]))
    assert info.value.field == "turn_2_kwargs"

    with pytest.raises(ConstraintFormatError) as info:
        load_multi_if_csv(_write(tmp_path / "d.csv", [{k: v for k, v in ROWS[0].items() if k != "language"}],
                                 [c for c in COLUMNS if c != "language"]))
    assert info.value.field == "language" and info.value.reason == "missing_column"

    with pytest.raises(ConstraintFormatError, match="duplicate"):
        load_multi_if_csv(_write(tmp_path / "e.csv", [ROWS[0], ROWS[0]]))
