"""Truncation never removes constraints; one chat template everywhere; generation stops on every EOS id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ifpo.data.datamodule import PreferenceDataModule
from ifpo.data.records import validate_record
from ifpo.data.tokenize import (
    PROMPT_TOO_LONG,
    QUAD_PROMPTS_IDENTICAL,
    RESPONSE_TOO_LONG,
    TokenizeSettings,
    encode_prompt_response,
    tokenize_record,
)
from ifpo.losses import get_loss_head
from ifpo.models.generation import GenerationSettings, HFGenerator, chat_prompts
from ifpo.models.loading import ChatTemplateError, eos_token_ids, load_tokenizer
from ifpo.sampling.base import SampleRequest
from ifpo.sampling.hf import HFSampler, SamplingSettings
from tests.hydra_helpers import compose_config

ASSETS = Path(__file__).resolve().parents[2] / "src" / "ifpo" / "assets"
SYSTEM = {"role": "system", "content": "Always answer in lowercase letters."}
LAST = {"role": "user", "content": "Now name a fruit; CONSTRAINT: end with an exclamation mark."}


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS / "tiny_tokenizer")


def _history(n: int, words: int = 12) -> list[dict[str, str]]:
    turns = []
    for i in range(n):
        turns += [{"role": "user", "content": f"old question {i} " + "tea " * words},
                  {"role": "assistant", "content": f"old answer {i} " + "calm " * words}]
    return turns


def _budget(tokenizer, messages) -> int:
    return len(
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
    )


def test_older_turns_are_dropped_first_system_and_last_turn_kept_whole(tokenizer):
    history = _history(3)
    prompt = [SYSTEM, *history, LAST]
    fits_two_old_turns = _budget(tokenizer, [SYSTEM, *history[2:], LAST])
    record = validate_record({"prompt": prompt, "chosen": "apple!", "rejected": "APPLE"}, "pair", "f", 1)
    out = tokenize_record(
        record, "pair", tokenizer, TokenizeSettings(max_length=400, max_prompt_length=fits_two_old_turns)
    )
    assert out["keep"]
    text = tokenizer.decode(out["prompt_ids"])
    assert SYSTEM["content"] in text and LAST["content"] in text  # whole, never cut
    assert "old question 0" not in text and "old answer 0" not in text  # the oldest exchange went first
    assert "old question 1" in text and "old question 2" in text
    assert len(out["prompt_ids"]) == fits_two_old_turns


def test_only_system_and_last_turn_left_then_dropped_with_the_real_reason(tokenizer):
    prompt = [SYSTEM, *_history(2), LAST]
    minimal = _budget(tokenizer, [SYSTEM, LAST])
    record = validate_record({"prompt": prompt, "chosen": "apple!", "rejected": "APPLE"}, "pair", "f", 1)
    kept = tokenize_record(
        record, "pair", tokenizer, TokenizeSettings(max_length=400, max_prompt_length=minimal)
    )
    assert kept["keep"] and tokenizer.decode(kept["prompt_ids"]).count("old") == 0
    too_long = tokenize_record(
        record, "pair", tokenizer, TokenizeSettings(max_length=400, max_prompt_length=minimal - 1)
    )
    assert not too_long["keep"] and too_long["drop_reason"] == PROMPT_TOO_LONG
    # The prompt fits its own budget but the response does not fit beside it.
    long_answer = validate_record(
        {"prompt": prompt, "chosen": "apple " * 50, "rejected": "APPLE"}, "pair", "f", 1
    )
    out = tokenize_record(
        long_answer, "pair", tokenizer, TokenizeSettings(max_length=minimal + 20, max_prompt_length=minimal)
    )
    assert not out["keep"] and out["drop_reason"] == RESPONSE_TOO_LONG


def test_pair_prompt_is_fitted_against_the_longest_response(tokenizer):
    """Chosen and rejected share one prompt (prefix sharing): it must leave room for both."""
    prompt = [SYSTEM, *_history(2), LAST]
    full = _budget(tokenizer, prompt)
    record = validate_record({"prompt": prompt, "chosen": "apple!", "rejected": "no " * 30}, "pair", "f", 1)
    out = tokenize_record(
        record, "pair", tokenizer, TokenizeSettings(max_length=full + 10, max_prompt_length=full)
    )
    assert out["keep"] and len(out["prompt_ids"]) + len(out["rejected_ids"]) <= full + 10
    assert len(out["prompt_ids"]) < full  # history dropped for the long rejected answer


def test_iopo_quad_whose_prompts_become_identical_is_dropped(tokenizer):
    # x1 and x2 differ only in an old turn; the budget forces it out, so they would be identical.
    x1 = [{"role": "user", "content": "earlier: use capitals"}, {"role": "assistant", "content": "OK"}, LAST]
    x2 = [{"role": "user", "content": "earlier: use lowercase"}, {"role": "assistant", "content": "ok"}, LAST]
    quad = validate_record({"x1": x1, "x2": x2, "y1": "APPLE!", "y2": "apple!"}, "quad", "f", 1)
    budget = _budget(tokenizer, [LAST])
    out = tokenize_record(quad, "quad", tokenizer, TokenizeSettings(max_length=200, max_prompt_length=budget))
    assert not out["keep"] and out["drop_reason"] == QUAD_PROMPTS_IDENTICAL
    roomy = tokenize_record(quad, "quad", tokenizer, TokenizeSettings(max_length=400, max_prompt_length=300))
    assert roomy["keep"] and roomy["x1_ids"] != roomy["x2_ids"]


def test_dropped_examples_are_counted_with_file_and_line(tmp_path, tokenizer):
    rows = [
        {"prompt": "Say hi.", "chosen": "hi", "rejected": "HELLO"},
        {"prompt": "word " * 300, "chosen": "hi", "rejected": "HELLO"},
        {"prompt": "Say hi.", "chosen": "hi " * 300, "rejected": "HELLO"},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = compose_config(
        "train",
        [
            "data=files",
            f"data.train_files=[{path}]",
            "data.max_length=128",
            "data.max_prompt_length=64",
            "loss=dpo",
        ],
        output_dir=tmp_path,
    )
    datamodule = PreferenceDataModule(cfg.data, tokenizer, get_loss_head("dpo"))
    datamodule.setup("fit")
    assert len(datamodule.train_set) == 1
    skips = datamodule.skips["train"]
    assert skips.counts == {PROMPT_TOO_LONG: 1, RESPONSE_TOO_LONG: 1}
    assert skips.examples[PROMPT_TOO_LONG] == f"{path}:2"
    assert skips.examples[RESPONSE_TOO_LONG] == f"{path}:3"


# -- one chat template ------------------------------------------------------------------------
@pytest.fixture()
def templateless(tmp_path) -> Path:
    folder = tmp_path / "tok"
    shutil.copytree(ASSETS / "tiny_tokenizer", folder)
    (folder / "chat_template.jinja").unlink()
    return folder


def test_a_tokenizer_without_chat_template_fails_everywhere_with_one_message(templateless):
    with pytest.raises(ChatTemplateError, match="no chat template: set model.chat_template"):
        load_tokenizer({"tokenizer": str(templateless)})
    raw = AutoTokenizer.from_pretrained(templateless)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(ChatTemplateError, match="no chat template"):  # training tokenization
        encode_prompt_response(raw, messages, [{"role": "assistant", "content": "yo"}])
    with pytest.raises(ChatTemplateError, match="no chat template"):  # eval / sampling prompts
        chat_prompts(raw, [messages])


def test_model_chat_template_override_by_name_or_file(templateless, tmp_path):
    named = load_tokenizer({"tokenizer": str(templateless), "chat_template": "chatml"})
    rendered = named.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    path = tmp_path / "mine.jinja"
    path.write_text(
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    own = load_tokenizer({"tokenizer": str(templateless), "chat_template": str(path)})
    assert chat_prompts(own, [[{"role": "user", "content": "hi"}]]) == ["[user] hi\n[assistant] "]
    # The override wins over a tokenizer's own template too.
    tiny = load_tokenizer({"tokenizer": str(ASSETS / "tiny_tokenizer"), "chat_template": "chatml"})
    assert chat_prompts(tiny, [[{"role": "user", "content": "hi"}]])[0].startswith("<|im_start|>user")
    with pytest.raises(ChatTemplateError, match=r"neither a file nor a bundled template \(bundled: chatml"):
        load_tokenizer({"tokenizer": str(templateless), "chat_template": "no_such_template"})


# -- stopping -----------------------------------------------------------------------------------
@pytest.fixture()
def always_token_zero(tokenizer):
    """A tiny Llama whose greedy next token is always id 0 (final norm zeroed: all logits tie)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(ASSETS / "tiny_llama")).eval()
    with torch.no_grad():
        model.model.norm.weight.zero_()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return model, calls


@pytest.mark.parametrize("via", ["eval", "sampler"])
def test_generation_stops_on_every_eos_id_of_the_generation_config(tokenizer, always_token_zero, via):
    model, calls = always_token_zero
    assert tokenizer.eos_token_id != 0

    def generate() -> int:
        calls.clear()
        if via == "eval":
            HFGenerator(model, tokenizer, GenerationSettings(max_new_tokens=6, show_progress=False)).generate(
                [[{"role": "user", "content": "hi"}]]
            )
        else:
            HFSampler(model, tokenizer, SamplingSettings(max_new_tokens=6, do_sample=False)).sample(
                [SampleRequest(key="a", messages=[{"role": "user", "content": "hi"}])], n=1, seed=0
            )
        return len(calls)  # one forward per generated token

    model.generation_config.eos_token_id = tokenizer.eos_token_id
    assert generate() == 6  # token 0 is not an end token: runs to max_new_tokens
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, 0]  # e.g. Llama-3's <|eot_id|>
    assert eos_token_ids(model, tokenizer) == [tokenizer.eos_token_id, 0]
    assert generate() == 1
