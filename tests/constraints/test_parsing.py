import json

import pytest

from ifpo.constraints import ConstraintError, ConstraintFormatError, load_ifeval_jsonl, parse_ifeval_record

GOOD = {
    "key": 7,
    "prompt": "Write about rivers.",
    "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
    "kwargs": [{}, {"relation": "at least", "num_words": 3}],
}


def test_parse_good_record_and_round_trip():
    instruction = parse_ifeval_record(GOOD, source="x.jsonl", line=3)
    assert instruction.id == "7" and instruction.prompt == GOOD["prompt"]
    assert instruction.instruction_ids == GOOD["instruction_id_list"]
    assert instruction.check("one two three") == [True, True]
    assert instruction.check("one, two") == [False, False]
    assert parse_ifeval_record(instruction.to_ifeval_record()) == instruction


def test_none_valued_kwargs_are_dropped_like_the_published_dataset_format():
    record = dict(GOOD, kwargs=[{"num_words": None, "keywords": None},
                                {"relation": "at least", "num_words": 3, "keywords": None}])
    assert parse_ifeval_record(record).constraints[1].kwargs == {"relation": "at least", "num_words": 3}


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"prompt": None}, "prompt", "bad_type"),
        ({"instruction_id_list": "punctuation:no_comma"}, "instruction_id_list", "bad_type"),
        ({"kwargs": [{}]}, "kwargs", "length_mismatch"),
        (
            {"instruction_id_list": ["punctuation:no_comma", "bogus:id"]},
            "instruction_id_list[1]",
            "unknown_kind",
        ),
        (
            {"kwargs": [{}, {"relation": "at least", "num_words": 3, "extra": 1}]},
            "kwargs[1].extra",
            "unknown_parameter",
        ),
        ({"kwargs": [{}, {"relation": "at least"}]}, "kwargs[1].num_words", "missing_parameter"),
        ({"kwargs": [{}, "num_words=3"]}, "kwargs[1]", "bad_type"),
    ],
)
def test_bad_records_name_source_line_and_field(change, field, reason):
    with pytest.raises(ConstraintError) as info:
        parse_ifeval_record({**GOOD, **change}, source="data.jsonl", line=12)
    err = info.value
    assert (err.source, err.line, err.field, err.reason) == ("data.jsonl", 12, field, reason)
    assert "data.jsonl" in str(err) and "12" in str(err) and field in str(err)


def test_missing_field_is_a_data_format_error():
    record = {k: v for k, v in GOOD.items() if k != "prompt"}
    with pytest.raises(ConstraintFormatError) as info:
        parse_ifeval_record(record, source="f", line=1)
    assert info.value.field == "prompt" and info.value.reason == "missing_field"


def test_load_jsonl_raise_and_skip(tmp_path):
    path = tmp_path / "mixed.jsonl"
    bad_kind = dict(GOOD, instruction_id_list=["bogus:id", "punctuation:no_comma"])
    path.write_text(
        "\n".join([json.dumps(GOOD), "{not json", "", json.dumps(bad_kind), json.dumps(GOOD)]) + "\n"
    )
    with pytest.raises(ConstraintFormatError) as info:
        load_ifeval_jsonl(path)
    assert info.value.line == 2 and info.value.reason == "invalid_json" and str(path) in str(info.value)
    instructions, skipped = load_ifeval_jsonl(path, on_error="skip")
    assert len(instructions) == 2
    assert skipped == {"invalid_json": 1, "unknown_kind": 1}
    with pytest.raises(ValueError):
        load_ifeval_jsonl(path, on_error="ignore")  # type: ignore[arg-type]
