"""IFBench checkers that score as the official allenai/IFBench code does.

Why this exists: the ``if_verifiable`` port we use for IFBench ids follows an older
allenai/IFBench. The official code (``ifbench/instructions.py`` and
``instructions_util.py``, Apache-2.0, read at commit db69a6f) has since changed
how eight checkers decide and how IFBench splits sentences. This module
re-implements those decisions (written from the official semantics, not copied):

* ``sentence:keyword`` -- the keyword must occur as a whole word (case-insensitive)
  in the N-th sentence, not as a substring.
* ``words:keywords_specific_position`` -- the m-th word of the n-th sentence, counting
  NLTK word tokens that contain a letter or digit, compared case-insensitively.
* ``words:words_position`` -- second and second-to-last NLTK token, case-insensitive;
  a final punctuation token is skipped.
* ``count:person_names`` -- names from the fixed list counted as whole words.
* ``count:pronouns`` -- a larger pronoun set (demonstrative, interrogative, indefinite)
  over NLTK word tokens.
* ``repeat:repeat_span`` -- ``n_start``/``n_end`` are inclusive character indices into
  ``prompt_to_repeat`` (0 is a valid start; the port replaced it by a random draw).
* ``format:title_case`` -- NLTK tokens; tokens not starting with a letter are
  ignored, a one-letter token must be upper case.
* ``format:quote_unquote`` -- only ASCII ``"`` counts as a quote (the official
  curly-quote normalisation is a no-op since its rewrite) and an empty remainder
  passes instead of raising ``IndexError``.

Sentence splitting for every IFBench checker is NLTK's ``sent_tokenize`` (Punkt),
as in the official ``split_into_sentences``; the port used IFEval's regex splitter.
"""

from __future__ import annotations

import re
import string
from typing import Any

import nltk

from ifpo.constraints import offline_nltk

offline_nltk.install()

from if_verifiable.ifbench import instructions as _port
from if_verifiable.ifbench import instructions_util as _port_util

PERSON_NAMES = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason",
    "Mia", "Ethan", "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe", "Daniel",
    "Chloe", "Samuel", "Lily", "Matthew", "Grace", "Owen", "Abigail", "Gabriel", "Ella", "Jacob",
    "Scarlett", "Nathan", "Victoria", "Elijah", "Layla", "Nicholas", "Audrey", "David", "Hannah",
    "Christopher", "Penelope", "Thomas", "Nora", "Andrew", "Aria", "Joseph", "Claire", "Ryan", "Stella",
    "Jonathan",
)  # fmt: skip

_PRONOUN_GROUPS = (
    "i me we us you he him she her it they them",  # personal
    "my mine our ours your yours his hers its their theirs",  # possessive
    "myself ourselves yourself yourselves himself herself itself themselves",  # reflexive
    "this that these those",  # demonstrative
    "who whom whose which what whoever whomever whatever whichever",  # interrogative / relative
    "anybody anyone anything everybody everyone everything nobody nothing somebody someone something",
    "each either neither both all some any none",  # indefinite
)
PRONOUNS = frozenset(word for group in _PRONOUN_GROUPS for word in group.split())


def split_sentences(text: str) -> list[str]:
    """IFBench's sentence splitter: NLTK Punkt (wired offline by :mod:`offline_nltk`)."""
    return nltk.sent_tokenize(text)


def _tokens(text: str) -> list[str]:
    return nltk.word_tokenize(text)


def _word_tokens(text: str) -> list[str]:
    """NLTK tokens that contain at least one letter or digit (punctuation tokens dropped)."""
    return [t for t in _tokens(text) if any(ch.isalnum() for ch in t)]


def _has_whole_word(word: str, text: str, flags: int = 0) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, flags) is not None


class IncludeKeywordChecker(_port.IncludeKeywordChecker):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        sentences = split_sentences(value)
        position = int(self._keyword_position)
        if len(sentences) < position:
            return False
        return _has_whole_word(self._keyword, sentences[position - 1], re.IGNORECASE)


class KeywordSpecificPositionChecker(_port.KeywordSpecificPositionChecker):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        sentences = split_sentences(value)
        if len(sentences) < self._n:
            return False
        words = _word_tokens(sentences[self._n - 1])
        return len(words) >= self._m and words[self._m - 1].lower() == self._keyword.lower()


class WordsPositionChecker(_port.WordsPositionChecker):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        words = _tokens(value)
        if len(words) < 2:
            return False
        # The official test is ``token in string.punctuation`` (a substring test, so "()" counts too).
        last = -3 if words[-1] in string.punctuation else -2
        if len(words) < -last:
            return False
        keyword = self._keyword.lower()
        return words[1].lower() == keyword and words[last].lower() == keyword


class PersonNameCountChecker(_port.PersonNameCountChecker):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        found = {name for name in PERSON_NAMES if _has_whole_word(name, value)}
        return len(found) >= self._num_person_names


class PronounCountChecker(_port.PronounCountChecker):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        # "/" is split so pronoun sets such as she/her/hers count one by one.
        tokens = _tokens(value.replace("/", " ").lower())
        return sum(token in PRONOUNS for token in tokens) >= self._num_pronouns


class RepeatSpanChecker(_port.RepeatSpanChecker):  # type: ignore[misc]
    def build_description(
        self, prompt_to_repeat: str | None = None, n_start: int | None = None, n_end: int | None = None
    ) -> str:
        if not prompt_to_repeat:
            raise ValueError("prompt_to_repeat must be set.")
        if n_start is None or n_end is None:
            # Only the official random draw needs them unset; a benchmark record always sets both.
            raise ValueError("repeat:repeat_span needs n_start and n_end (inclusive character indices)")
        self._prompt_to_repeat, self._n_start, self._n_end = prompt_to_repeat, int(n_start), int(n_end)
        return (
            f"Copy the span of words that lies between (and including) index {self._n_start} and "
            f"{self._n_end}, the indices are character indices!"
        )

    def check_following(self, value: str) -> bool:
        span = self._prompt_to_repeat[self._n_start : self._n_end + 1]
        return value.strip().lower() == span.strip().lower()


class TitleCaseChecker(_port.TitleCaseChecker):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        for word in _tokens(value):
            if not word or not word[0].isalpha():
                continue
            if len(word) == 1:
                if word.islower():
                    return False
                continue
            head, rest = word[0], word[1:]
            if head.islower() and (rest.isupper() or rest.islower()):
                return False
        return True


class QuoteExplanationChecker(_port.QuoteExplanationChecker):  # type: ignore[misc]
    def check_following(self, value: str) -> bool:
        text = "".join(value.replace("'\"'", "").split())  # drop mentions of the character '"', then spaces
        if '""' in text:
            return False
        remainder = text.strip(string.digits + string.punctuation.replace('"', ""))
        return not remainder.endswith('"')


#: Instruction id -> checker class scoring as the official code does.
OFFICIAL_CHECKERS: dict[str, type[Any]] = {
    "sentence:keyword": IncludeKeywordChecker,
    "words:keywords_specific_position": KeywordSpecificPositionChecker,
    "words:words_position": WordsPositionChecker,
    "count:person_names": PersonNameCountChecker,
    "count:pronouns": PronounCountChecker,
    "repeat:repeat_span": RepeatSpanChecker,
    "format:title_case": TitleCaseChecker,
    "format:quote_unquote": QuoteExplanationChecker,
}


def install() -> None:
    """Make every IFBench checker of the port split sentences the official way (idempotent)."""
    _port_util.split_into_sentences = split_sentences
