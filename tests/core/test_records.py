"""Record validation, error locations, counted skips, tokenisation and the length policy."""

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from ifpo.data.collate import IGNORE_INDEX, PreferenceCollator
from ifpo.data.records import read_rows, validate_record, validate_rows
from ifpo.data.sources import load_file_records
from ifpo.data.tokenize import PROMPT_TOO_LONG, RESPONSE_TOO_LONG, TokenizeSettings, tokenize_record
from ifpo.io.errors import DataFormatError, SkipCounter

ASSETS = Path(__file__).resolve().parents[2] / "src" / "ifpo" / "assets"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS / "tiny_tokenizer")


def _write(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


GOOD = {"prompt": "Say hi.", "chosen": "hi", "rejected": "HELLO"}


def test_plain_and_conversational_pairs_normalise_to_messages():
    plain = validate_record(dict(GOOD, margin=2), "pair", "f", 1)
    assert plain["prompt"] == [{"role": "user", "content": "Say hi."}]
    assert plain["chosen"] == [{"role": "assistant", "content": "hi"}]
    assert plain["margin"] == 2.0
    conv = validate_record(
        {
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                       {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Again"}],
            "chosen": [{"role": "assistant", "content": "ok"}],
            "rejected": [{"role": "assistant", "content": "no"}],
        },
        "pair", "f", 1,
    )
    assert len(conv["prompt"]) == 4 and conv["margin"] == 0.0


def test_implicit_prompt_is_the_shared_prefix():
    user = {"role": "user", "content": "Q"}
    record = {
        "chosen": [user, {"role": "assistant", "content": "a"}],
        "rejected": [user, {"role": "assistant", "content": "b"}],
    }
    out = validate_record(record, "pair", "f", 1)
    assert out["prompt"] == [user] and out["chosen"][0]["content"] == "a"


@pytest.mark.parametrize(
    "row,field,problem",
    [
        ({"prompt": "p", "chosen": "a"}, "rejected", "missing"),
        ({"prompt": "p", "chosen": 3, "rejected": "b"}, "chosen", "expected a string"),
        ({"prompt": "p", "chosen": "  ", "rejected": "b"}, "chosen", "empty response"),
        ({"prompt": "p", "chosen": "a", "rejected": "a"}, "rejected", "identical to chosen"),
        (dict(GOOD, margin="big"), "margin", "finite number"),
        (
            {"prompt": [{"role": "wizard", "content": "x"}], "chosen": "a", "rejected": "b"},
            "prompt[0].role",
            "expected one of",
        ),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, row, field, problem):
    path = _write(tmp_path, [GOOD, row])
    with pytest.raises(DataFormatError) as err:
        load_file_records(path, "pair", "raise", SkipCounter())
    assert (err.value.source, err.value.line, err.value.field) == (str(path), 2, field)
    assert problem in str(err.value) and f"{path}:2" in str(err.value)


def test_invalid_json_names_its_line(tmp_path):
    path = _write(tmp_path, [GOOD, GOOD, '{"prompt": "p", "chosen": '])
    with pytest.raises(DataFormatError, match=r":3: field '<json>': invalid JSON"):
        load_file_records(path, "pair", "raise", SkipCounter())


def test_skip_mode_counts_every_bad_row_by_reason(tmp_path):
    path = _write(
        tmp_path, [GOOD, "not json", {"prompt": "p", "chosen": "a", "rejected": "a"}, GOOD, {"prompt": "p"}]
    )
    skips = SkipCounter()
    records = load_file_records(path, "pair", "skip", skips)
    assert len(records) == 2
    assert skips.total == 3
    assert skips.counts["<json>: invalid JSON: Expecting value"] == 1
    assert "rejected: identical to chosen" in skips.counts
    assert f"{path}:3" in skips.summary()


def test_quads_validate_and_reject_identical_instructions():
    quad = {"x1": "Answer in lowercase.", "x2": "Answer in capitals.", "y1": "ok", "y2": "OK"}
    assert validate_record(quad, "quad", "f", 1)["x2"][0]["content"] == "Answer in capitals."
    with pytest.raises(DataFormatError, match="identical to x1"):
        validate_record(dict(quad, x2=quad["x1"]), "quad", "f", 7)


def test_json_array_files_and_unsupported_suffix(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([GOOD, GOOD]))
    assert [line for line, _ in read_rows(path)] == [1, 2]
    with pytest.raises(ValueError, match="unsupported data file type"):
        load_file_records(_write(tmp_path, [GOOD], "data.csv"), "pair", "raise", SkipCounter())


def test_on_error_value_is_checked():
    with pytest.raises(ValueError, match="allowed: raise, skip"):
        validate_rows([], "pair", "f", "ignore", SkipCounter())


def test_tokenised_prompt_is_masked_and_response_kept_whole(tokenizer):
    record = validate_record(
        {"prompt": "Write about tea.", "chosen": "tea gives calm joy.", "rejected": "TEA."}, "pair", "f", 1
    )
    out = tokenize_record(record, "pair", tokenizer, TokenizeSettings(max_length=256, max_prompt_length=128))
    assert out["keep"]
    text = tokenizer.decode(out["prompt_ids"] + out["chosen_ids"])
    assert text.startswith("<|user|>\nWrite about tea.") and "tea gives calm joy.<|end|>" in text
    batch = PreferenceCollator(("chosen", "rejected"), tokenizer.pad_token_id)([out])
    n_prompt, n_chosen = len(out["prompt_ids"]), len(out["chosen_ids"])
    assert (batch.labels[0, :n_prompt] == IGNORE_INDEX).all()
    assert batch.labels[0, n_prompt : n_prompt + n_chosen].tolist() == out["chosen_ids"]
    assert batch.input_ids.shape[0] == 2 and batch.input_ids.shape[1] % 8 == 0


def test_long_prompts_are_never_cut_and_long_responses_dropped(tokenizer):
    # The final user turn is where the constraints are: it is never cut, so a prompt that is too
    # long on its own drops the example (with the real reason) instead of losing its instruction.
    long_prompt = " ".join(["word"] * 200) + " FINAL QUESTION"
    record = validate_record({"prompt": long_prompt, "chosen": "short", "rejected": "other"}, "pair", "f", 1)
    out = tokenize_record(record, "pair", tokenizer, TokenizeSettings(max_length=64, max_prompt_length=32))
    assert not out["keep"] and out["drop_reason"] == PROMPT_TOO_LONG
    assert "FINAL QUESTION" in tokenizer.decode(out["prompt_ids"])  # never cut
    long_response = validate_record({"prompt": "p", "chosen": "x " * 200, "rejected": "y"}, "pair", "f", 1)
    dropped = tokenize_record(
        long_response, "pair", tokenizer, TokenizeSettings(max_length=64, max_prompt_length=32)
    )
    assert not dropped["keep"] and dropped["drop_reason"] == RESPONSE_TOO_LONG
    assert len(dropped["chosen_ids"]) > 64  # never truncated


def test_parquet_files_and_local_datasets_load_through_datasets(tmp_path):
    import datasets

    from ifpo.data.sources import load_hub_records

    rows = [GOOD, {"prompt": "p", "chosen": "a", "rejected": "a"}, dict(GOOD, margin=3)]
    table = datasets.Dataset.from_list([dict(r, margin=float(r.get("margin", 0))) for r in rows])
    parquet = tmp_path / "pairs.parquet"
    table.to_parquet(str(parquet))
    with pytest.raises(
        DataFormatError, match=r"pairs.parquet \(row\):2: field 'rejected': identical to chosen"
    ):
        load_file_records(parquet, "pair", "raise", SkipCounter())
    skips = SkipCounter()
    assert [r["margin"] for r in load_file_records(parquet, "pair", "skip", skips)] == [0.0, 3.0]
    assert skips.total == 1
    # A dataset folder (what a hub id resolves to) loads with datasets.load_dataset by name.
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        "\n".join(json.dumps(r) for r in (GOOD, dict(GOOD, chosen="yo"))) + "\n"
    )
    records = load_hub_records(str(folder), None, "train", "pair", "raise", SkipCounter())
    assert [r["chosen"][0]["content"] for r in records] == ["hi", "yo"]
