"""The IFEval checkers as the Multi-IF release changed them for non-English responses.

Why this exists: Multi-IF (facebookresearch/Multi-IF, ``ifeval.py`` and ``metrics.py``) scores
with its own copy of the IFEval checkers, changed where English-only counting would be wrong.
This module re-implements those changes (from the release's semantics, not its code) on top of
the ``if_verifiable`` IFEval classes, for Multi-IF scoring only -- IFEval itself keeps the
reference checkers:

* ``length_constraints:number_sentences`` -- the response's language is detected (langdetect,
  English when detection fails): Thai counts PyThaiNLP sentences line by line (a newline also
  ends a sentence), Hindi splits after ``।``, ``!`` or ``?``, Chinese/Japanese split after
  ``。！？!?.．`` or a line end; other languages use NLTK Punkt as IFEval does.
* ``length_constraints:number_words`` -- Thai counts PyThaiNLP ``newmm`` tokens (spaces
  included, as the release does), Chinese/Japanese count each CJK/kana/Hangul character, each
  emoji and each remaining whitespace-separated word, after dropping punctuation.
* ``startend:quotation`` -- a response wrapped in ``"…"``, ``“…”`` or ``「…」`` passes.
* ``keywords:frequency`` and ``detectable_format:number_highlighted_sections`` return False
  instead of raising (e.g. a keyword that is not a valid regular expression).

Scoring differs from IFEval in one more place (see :func:`check`): strict mode checks any
non-empty response, even one of whitespace only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import emoji
import langdetect
from if_verifiable.common import get_loose_transformations
from if_verifiable.ifeval import instructions as _ifeval
from if_verifiable.ifeval import instructions_util as _ifeval_util

from ifpo.constraints import Constraint
from ifpo.constraints.registry import get_kind

CJK_LANGUAGES = frozenset({"zh", "zh-cn", "zh-tw", "ja"})
_CJK_CHARS = re.compile(
    r"[\u4E00-\u9FFF\u3400-\u4DBF]"  # Chinese
    r"|[\u3040-\u309f\u30a0-\u30ff]"  # Japanese hiragana and katakana
    r"|[\uAC00-\uD7AF]"  # Korean hangul syllables
)
# Punctuation (Latin and CJK) removed before counting Chinese/Japanese words, as the release lists it.
_CJK_PUNCTUATION = re.compile(
    r"[\\.!?．/_,{}<>:;$%^&*(+\"'+——！，。？、`~@#￥……（）：；《）《》“”()\[\]»〔〕\-「」]+"
)
_CJK_SENTENCE = re.compile(r"[^!?。.！？．\n]+[!?。.！？．\n]?")
_HINDI_SENTENCE_END = re.compile(r"(?<=[।!?])\s*")


def detect_language(text: str) -> str:
    """langdetect's code for ``text``; ``"en"`` when it cannot tell (the release's fallback)."""
    try:
        return langdetect.detect(text)
    except langdetect.LangDetectException:
        return "en"


@functools.cache
def _thai() -> Any:
    from pythainlp import tokenize  # imported on first Thai text: it loads dictionaries and a CRF model

    return tokenize


def split_cjk_sentences(text: str) -> Iterator[str]:
    """Chinese/Japanese sentences: runs ending in a sentence mark, line by line."""
    for line in text.splitlines():
        yield from _CJK_SENTENCE.findall(line.strip())


def count_cjk_words(text: str) -> int:
    """Each CJK/kana/hangul character, each emoji and each other space-separated word counts one."""
    text = _CJK_PUNCTUATION.sub("", text)
    emojis = emoji.emoji_count(text)
    text = emoji.replace_emoji(text, "")
    characters = len(_CJK_CHARS.findall(text))
    return characters + len(_CJK_CHARS.sub(" ", text).split()) + emojis


def count_hindi_sentences(text: str) -> int:
    return sum(1 for part in _HINDI_SENTENCE_END.split(text) if part.strip())


def count_sentences(text: str) -> int:
    """Sentences counted as Multi-IF counts them for the detected language."""
    language = detect_language(text)
    if language == "th":
        return sum(len(_thai().sent_tokenize(line)) for line in text.splitlines())
    if language == "hi":
        return count_hindi_sentences(text)
    if language in CJK_LANGUAGES:
        return sum(1 for _ in split_cjk_sentences(text))
    return _ifeval_util.count_sentences(text)


def count_words(text: str) -> int:
    """Words counted as Multi-IF counts them for the detected language."""
    language = detect_language(text)
    if language == "th":
        return len(_thai().word_tokenize(text))
    if language in CJK_LANGUAGES:
        return count_cjk_words(text)
    return _ifeval_util.count_words(text)


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == "less than" else count >= threshold


class NumberOfSentences(_ifeval.NumberOfSentences):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        return _compare(count_sentences(value), self._comparison_relation, self._num_sentences_threshold)


class NumberOfWords(_ifeval.NumberOfWords):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        return _compare(count_words(value), self._comparison_relation, self._num_words)


class QuotationChecker(_ifeval.QuotationChecker):  # type: ignore[misc]
    PAIRS = (('"', '"'), ("\u201c", "\u201d"), ("\u300c", "\u300d"))  # English, Chinese, Japanese

    def check_following(self, value: str) -> bool:
        value = value.strip()
        return len(value) > 1 and (value[0], value[-1]) in self.PAIRS


class KeywordFrequencyChecker(_ifeval.KeywordFrequencyChecker):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        try:
            return bool(super().check_following(value))
        except re.error:
            return False


class HighlightSectionChecker(_ifeval.HighlightSectionChecker):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        try:
            return bool(super().check_following(value))
        except (re.error, TypeError):
            return False


#: IFEval id -> the Multi-IF behaviour of its checker.
MULTI_IF_CHECKERS: dict[str, type[Any]] = {
    "length_constraints:number_sentences": NumberOfSentences,
    "length_constraints:number_words": NumberOfWords,
    "startend:quotation": QuotationChecker,
    "keywords:frequency": KeywordFrequencyChecker,
    "detectable_format:number_highlighted_sections": HighlightSectionChecker,
}


@functools.lru_cache(maxsize=4096)
def _checker(kind: str, kwargs_key: tuple[tuple[str, Any], ...]) -> Any:
    cls = MULTI_IF_CHECKERS.get(kind) or get_kind(kind).checker_class
    checker = cls(kind)
    checker.build_description(**{k: _unfreeze(v) for k, v in kwargs_key})
    return checker


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _unfreeze(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check(constraint: Constraint, response: str, loose: bool = False) -> bool:
    """Multi-IF's verdict: strict checks any non-empty response; loose tries the eight IFEval
    variants, skipping blank ones. Parameters a checker cannot honour fail (as for IFEval)."""
    if not constraint.checkable:
        raise ValueError(f"{constraint.kind!r} needs a judge; Multi-IF is rule-scored")
    if constraint.out_of_domain_reason is not None:
        return False
    checker = _checker(constraint.kind, tuple(sorted((k, _freeze(v)) for k, v in constraint.kwargs.items())))
    if not loose:
        return bool(response) and bool(checker.check_following(response))
    return any(v.strip() and checker.check_following(v) for v in get_loose_transformations(response))
