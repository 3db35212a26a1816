"""Multi-IF's language-specific checker behaviour, per language, and its official file layout.

Expected counts are worked out by hand from the release's rules (see ``multi_if_checkers``);
each case also shows what the unmodified IFEval checker says, so a regression to it fails.
"""

import csv
import json
import re

import pytest
from if_verifiable.ifeval import instructions_util as ifeval_util

from ifpo.constraints import Constraint, parse_ifeval_record
from ifpo.eval import multi_if_checkers as mif
from ifpo.eval.multi_if import load_multi_if_csv, score_multi_if, score_turn

THAI_LINES = "สวัสดีครับ\nผมชื่อสมชาย ผมเป็นครู\nยินดีที่ได้รู้จัก"
THAI_WORDS = "ฉันชอบกินข้าว วันนี้อากาศดีมาก"
HINDI = "भारत एक विशाल देश है। यहाँ कई भाषाएँ बोली जाती हैं। क्या आप जानते हैं?"
CHINESE = "今天天气很好。我们去公园吧！你觉得怎么样？"
CHINESE_EMOJI = "人工智能正在改变世界😀，我们应该认真思考。"
CHINESE_LINES = "这是第一句\n这是第二句\n这是第三句"
JAPANESE = "今日はいい天気ですね。散歩に行きましょう！"


def _ifeval(kind, kwargs, response):
    return Constraint(kind, kwargs).check(response)


def _mif(kind, kwargs, response, loose=False):
    return mif.check(Constraint(kind, kwargs), response, loose=loose)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        (THAI_WORDS, "th"),
        (HINDI, "hi"),
        (CHINESE, "zh-cn"),
        (JAPANESE, "ja"),
        ("Hello there, my friend.", "en"),
    ],
)
def test_language_detection(text, language):
    assert mif.detect_language(text) == language
    assert mif.detect_language("1234 5678") == "en"  # nothing to detect: the release falls back to English


def test_thai_sentences_count_each_line_and_each_pythainlp_sentence():
    # Line 2 holds two sentences (space-separated clauses); lines 1 and 3 one each.
    assert mif.count_sentences(THAI_LINES) == 4
    assert ifeval_util.count_sentences(THAI_LINES) == 1  # Punkt sees no sentence mark
    kwargs = {"num_sentences": 4, "relation": "at least"}
    assert _mif("length_constraints:number_sentences", kwargs, THAI_LINES) is True
    assert _ifeval("length_constraints:number_sentences", kwargs, THAI_LINES) is False


def test_thai_words_are_pythainlp_tokens_spaces_included():
    # ฉัน|ชอบ|กินข้าว|" "|วันนี้|อากาศ|ดีมาก
    assert mif.count_words(THAI_WORDS) == 7
    assert ifeval_util.count_words(THAI_WORDS) == 2
    kwargs = {"num_words": 5, "relation": "at least"}
    assert _mif("length_constraints:number_words", kwargs, THAI_WORDS) is True
    assert _ifeval("length_constraints:number_words", kwargs, THAI_WORDS) is False


def test_hindi_sentences_end_at_danda_question_and_exclamation():
    assert mif.count_hindi_sentences(HINDI) == 3
    assert mif.count_sentences(HINDI) == 3 and ifeval_util.count_sentences(HINDI) == 1
    assert mif.count_sentences("नमस्ते! आप कैसे हैं? मैं ठीक हूँ।") == 3
    kwargs = {"num_sentences": 3, "relation": "less than"}
    assert _mif("length_constraints:number_sentences", kwargs, HINDI) is False
    assert _ifeval("length_constraints:number_sentences", kwargs, HINDI) is True
    # Hindi words are counted as in IFEval (the release has no Hindi word rule).
    assert mif.count_words(HINDI) == ifeval_util.count_words(HINDI) == 15


def test_chinese_sentences_split_at_full_width_marks_and_lines():
    assert list(mif.split_cjk_sentences(CHINESE)) == ["今天天气很好。", "我们去公园吧！", "你觉得怎么样？"]
    assert mif.count_sentences(CHINESE) == 3 and ifeval_util.count_sentences(CHINESE) == 1
    assert mif.count_sentences(CHINESE_LINES) == 3  # a line end also ends a sentence


def test_chinese_words_are_characters_plus_emoji():
    assert mif.count_words(CHINESE) == 18  # 6 + 6 + 6 characters, punctuation dropped
    assert mif.count_words(CHINESE_EMOJI) == 19  # 10 + 8 characters + 1 emoji
    assert ifeval_util.count_words(CHINESE) == 3
    assert mif.count_cjk_words("中文 mixed with English") == 5  # 2 characters + 3 words
    kwargs = {"num_words": 10, "relation": "at least"}
    assert _mif("length_constraints:number_words", kwargs, CHINESE) is True
    assert _ifeval("length_constraints:number_words", kwargs, CHINESE) is False


def test_japanese_sentences_and_words():
    assert mif.count_sentences(JAPANESE) == 2 and ifeval_util.count_sentences(JAPANESE) == 1
    assert mif.count_words(JAPANESE) == 19  # 10 + 9 kanji/kana, punctuation dropped


def test_english_keeps_ifeval_counting():
    text = "Dr. Smith went home. He slept well."
    assert mif.count_sentences(text) == ifeval_util.count_sentences(text) == 2
    assert mif.count_words(text) == ifeval_util.count_words(text) == 7


@pytest.mark.parametrize(
    ("response", "multi_if", "ifeval"),
    [
        ('"English quote"', True, True),
        ("\u201c中文引号\u201d", True, False),
        ("\u300c日本語の引用\u300d", True, False),
        ("\u00abguillemets\u00bb", False, False),
        ("\u201c", False, False),
        ("\u300c mismatched \u201d", False, False),
    ],
)
def test_quotation_marks_per_language(response, multi_if, ifeval):
    assert _mif("startend:quotation", {}, response) is multi_if
    assert _ifeval("startend:quotation", {}, response) is ifeval


def test_checkers_return_false_instead_of_raising():
    kwargs = {"keyword": "(天气", "frequency": 1, "relation": "at least"}
    assert _mif("keywords:frequency", kwargs, CHINESE) is False
    assert _mif("keywords:frequency", kwargs, CHINESE, loose=True) is False
    with pytest.raises(re.error):
        _ifeval("keywords:frequency", kwargs, CHINESE)


def test_strict_checks_a_blank_response_like_the_release():
    kwargs = {"keyword": "x", "frequency": 1, "relation": "less than"}
    assert _mif("keywords:frequency", kwargs, "   ") is True  # release: `if response and check(...)`
    assert _mif("keywords:frequency", kwargs, "   ", loose=True) is False  # loose skips blank variants
    assert _mif("keywords:frequency", kwargs, "") is False
    assert _ifeval("keywords:frequency", kwargs, "   ") is False


def test_score_turn_uses_multi_if_checkers():
    record = {
        "key": "k",
        "prompt": "p",
        "instruction_id_list": ["length_constraints:number_sentences", "startend:quotation"],
        "kwargs": [{"num_sentences": 3, "relation": "at least"}, {}],
    }
    strict, loose = score_turn(parse_ifeval_record(record), "\u201c" + CHINESE + "\u201d")
    assert strict.follow_instruction_list == [True, True] and loose.follow_instruction_list == [True, True]


# ------------------------------------------------------------------ the official file layout
OFFICIAL_COLUMNS = (
    ["turns", "responses"]
    + [f"turn_{k}_{p}" for k in (1, 2, 3) for p in ("prompt", "instruction_id_list", "kwargs")]
    + ["key", "turn_index", "language"]
)


def _message(text):
    return json.dumps({"role": "user", "content": text}, ensure_ascii=False)


def _kwargs(*objects):
    return json.dumps([json.dumps(o, ensure_ascii=False) for o in objects])


def _official_rows():
    ids1 = ["length_constraints:number_sentences"]
    ids2 = ids1 + ["startend:quotation"]
    zh = {
        "key": "1000:1:zh",
        "turn_index": "0",
        "language": "Chinese",
        "turns": "",
        "responses": "",
        "turn_1_prompt": _message("写三句话。"),
        "turn_1_instruction_id_list": json.dumps(ids1),
        "turn_1_kwargs": _kwargs({"num_sentences": 3, "relation": "at least"}),
        "turn_2_prompt": _message("用引号包起来。"),
        "turn_2_instruction_id_list": json.dumps(ids2),
        "turn_2_kwargs": _kwargs({"num_sentences": 3, "relation": "at least"}, {}),
        # a conversation with two turns: the third cells hold the string None
        "turn_3_prompt": "None",
        "turn_3_instruction_id_list": "None",
        "turn_3_kwargs": "None",
    }
    hi = dict(
        zh,
        key="1001:1:hi",
        language="Hindi",
        turn_1_prompt=_message("तीन वाक्य लिखिए।"),
        turn_2_prompt=_message("उद्धरण चिह्नों में लिखिए।"),
        turn_3_prompt="",
        turn_3_instruction_id_list="",
        turn_3_kwargs="",
    )
    return [zh, hi]


def test_official_layout_loads_and_scores_per_language(tmp_path):
    path = tmp_path / "multiIF_20241018.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=OFFICIAL_COLUMNS)
        writer.writeheader()
        writer.writerows(_official_rows())
    conversations = load_multi_if_csv(path)
    assert [(c.id, c.language, len(c.turns)) for c in conversations] == [
        ("1000:1:zh", "Chinese", 2),
        ("1001:1:hi", "Hindi", 2),
    ]
    assert conversations[0].turns[0].prompt == "写三句话。"
    assert conversations[0].turns[1].constraints[0].kwargs == {"num_sentences": 3, "relation": "at least"}
    report = score_multi_if(
        conversations,
        {
            "1000:1:zh": [CHINESE, "\u201c" + CHINESE + "\u201d"],
            "1001:1:hi": [HINDI, '"' + HINDI + '"'],
        },
    )
    # Every turn follows with the release's checkers; the IFEval ones would fail all sentence counts.
    assert report.turn_scores() == {1: 1.0, 2: 1.0}
    assert report.language_scores() == {"Chinese": {1: 1.0, 2: 1.0}, "Hindi": {1: 1.0, 2: 1.0}}
