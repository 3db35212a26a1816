"""Per-kind knowledge for the 25 IFEval instruction ids that checkers do not carry.

The checkers themselves come from ``if_verifiable``; this module adds what a
preference-data builder needs on top: instruction paraphrases, parameter types,
the reverse of a constraint (RPO) and a revision (IOPO).

Reverse functions and revise functions take and return plain ``(kind, kwargs)``
pairs so this module does not depend on the ``Constraint`` class.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from if_verifiable.ifeval import instructions_util

KindAndKwargs = tuple[str, dict[str, Any]]
Reverser = Callable[[Mapping[str, Any]], KindAndKwargs]
Reviser = Callable[[Mapping[str, Any], random.Random], KindAndKwargs]

LESS_THAN = "less than"
AT_LEAST = "at least"
RELATIONS = (LESS_THAN, AT_LEAST)
ENDING_PHRASES = (
    "Any other questions?",
    "Is there anything else I can help with?",
    "Let me know if you have additional questions.",
    "That is all.",
)
POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")
SECTION_SPLITTERS = ("Section", "SECTION")


@dataclass(frozen=True)
class IFEvalKindInfo:
    """Everything known about one IFEval kind beyond its checker.

    ``param_types`` maps each accepted parameter to its Python type (``list``
    means a list of strings); all of them are required, because the IFEval
    checkers draw a *random* value for a missing one.
    """

    param_types: Mapping[str, type]
    templates: tuple[str, ...]
    revise: Reviser
    reverse: Reverser | None = None
    reverse_exactness: str | None = None
    relation_param: str | None = None
    extra_fields: Callable[[Mapping[str, Any]], dict[str, str]] = field(default=lambda kwargs: {})
    out_of_domain: Callable[[Mapping[str, Any]], str | None] | None = None


def _letter_out_of_domain(kwargs: Mapping[str, Any]) -> str | None:
    """IFEval's letter checker only handles a-z; for anything else it silently counts a *random* letter.

    The dataset has one such record (key 1122, letter "#"; see google-research
    PR 2301). A random draw makes scores nondeterministic, and the published
    GPT-4 figures (76.89% / 83.57%) count that instruction as failed, so we
    treat an out-of-domain letter as a constraint no response satisfies.
    """
    letter = str(kwargs.get("letter", ""))
    if len(letter) == 1 and "a" <= letter.lower() <= "z":
        return None
    return f"letter {letter!r} is not an ASCII letter; IFEval's checker cannot count it"


def _flip_relation(kind: str, param: str) -> Reverser:
    def reverse(kwargs: Mapping[str, Any]) -> KindAndKwargs:
        flipped = AT_LEAST if kwargs[param] == LESS_THAN else LESS_THAN
        return kind, {**kwargs, param: flipped}

    return reverse


def _tighten_count(kind: str, count_param: str, relation_param: str | None) -> Reviser:
    """Make the bound stricter so some responses meeting the original fail the revision."""

    def revise(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
        n = int(kwargs[count_param])
        step = max(1, round(n * rng.choice((0.25, 0.5))))
        relation = kwargs[relation_param] if relation_param else AT_LEAST
        if relation == LESS_THAN and n - step >= 1:
            new_n = n - step
        else:
            new_n = n + step
        return kind, {**kwargs, count_param: new_n}

    return revise


def _change_exact_count(kind: str, count_param: str, minimum: int = 1) -> Reviser:
    """For an exact-count kind, move the count by one or two (any change breaks a satisfying response)."""

    def revise(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
        n = int(kwargs[count_param])
        delta = rng.choice((1, 2))
        new_n = n + delta if n - delta < minimum or rng.random() < 0.5 else n - delta
        return kind, {**kwargs, count_param: new_n}

    return revise


def _swap_choice(kind: str, param: str, options: tuple[str, ...]) -> Reviser:
    def revise(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
        others = [o for o in options if o != kwargs[param]]
        return kind, {**kwargs, param: rng.choice(others)}

    return revise


def _change_word_list(kind: str, param: str, add: bool) -> Reviser:
    """Add a fresh word from IFEval's word list (``add``) or replace one listed word with it."""

    def revise(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
        words = list(kwargs[param])
        taken = {w.lower() for w in words}
        fresh = rng.choice([w for w in instructions_util.WORD_LIST if w.lower() not in taken])
        if add or not words:
            words.append(fresh)
        else:
            words[rng.randrange(len(words))] = fresh
        return kind, {**kwargs, param: words}

    return revise


def _to_kind(kind: str, kwargs: Mapping[str, Any] | None = None) -> Reviser:
    def revise(_: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
        return kind, dict(kwargs or {})

    return revise


def _revise_keyword_frequency(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
    if rng.random() < 0.5:
        return _tighten_count("keywords:frequency", "frequency", "relation")(kwargs, rng)
    fresh = rng.choice([w for w in instructions_util.WORD_LIST if w != kwargs["keyword"]])
    return "keywords:frequency", {**kwargs, "keyword": fresh}


def _revise_letter(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
    if rng.random() < 0.5:
        return _tighten_count("keywords:letter_frequency", "let_frequency", "let_relation")(kwargs, rng)
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz" if c != str(kwargs["letter"]).lower()]
    return "keywords:letter_frequency", {**kwargs, "letter": rng.choice(letters)}


def _revise_language(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
    others = sorted(code for code in instructions_util.LANGUAGE_CODES if code != kwargs["language"])
    return "language:response_language", {"language": rng.choice(others)}


def _revise_nth_paragraph(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
    fresh = rng.choice([w for w in instructions_util.WORD_LIST if w != kwargs["first_word"]])
    return "length_constraints:nth_paragraph_first_word", {**kwargs, "first_word": fresh}


def _revise_end_phrase(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
    return _swap_choice("startend:end_checker", "end_phrase", ENDING_PHRASES)(kwargs, rng)


def _revise_repeat_prompt(kwargs: Mapping[str, Any], rng: random.Random) -> KindAndKwargs:
    # Ask for the request to be repeated behind a fixed marker: a response that
    # opens with the bare request (satisfying the original) violates this.
    return "combination:repeat_prompt", {"prompt_to_repeat": "Request: " + str(kwargs["prompt_to_repeat"])}


def _quoted_list(words: Any) -> str:
    return ", ".join(f'"{w}"' for w in words)


def _language_name(kwargs: Mapping[str, Any]) -> dict[str, str]:
    code = kwargs.get("language", "")
    return {"language_name": instructions_util.LANGUAGE_CODES.get(code, str(code))}


IFEVAL_KINDS: dict[str, IFEvalKindInfo] = {
    "keywords:existence": IFEvalKindInfo(
        param_types={"keywords": list},
        templates=(
            "Include the keywords {keywords_text} in the response.",
            "Make sure your answer mentions {keywords_text}.",
            "Your response must contain the words {keywords_text}.",
        ),
        revise=_change_word_list("keywords:existence", "keywords", add=False),
        reverse=lambda kw: ("keywords:forbidden_words", {"forbidden_words": list(kw["keywords"])}),
        reverse_exactness="approximate",
        extra_fields=lambda kw: {"keywords_text": _quoted_list(kw.get("keywords", []))},
    ),
    "keywords:forbidden_words": IFEvalKindInfo(
        param_types={"forbidden_words": list},
        templates=(
            "Do not include the keywords {forbidden_words_text} in the response.",
            "Avoid using the words {forbidden_words_text} anywhere in your answer.",
            "Your response must not contain the words {forbidden_words_text}.",
        ),
        # Forbidding one more word is stricter: answers using it now fail.
        revise=_change_word_list("keywords:forbidden_words", "forbidden_words", add=True),
        reverse=lambda kw: ("keywords:existence", {"keywords": list(kw["forbidden_words"])}),
        reverse_exactness="approximate",
        extra_fields=lambda kw: {"forbidden_words_text": _quoted_list(kw.get("forbidden_words", []))},
    ),
    "keywords:frequency": IFEvalKindInfo(
        param_types={"keyword": str, "frequency": int, "relation": str},
        templates=(
            'In your response, the word "{keyword}" should appear {relation} {frequency} times.',
            'Use the word "{keyword}" {relation} {frequency} times.',
            'Make sure "{keyword}" occurs {relation} {frequency} times in your answer.',
        ),
        revise=_revise_keyword_frequency,
        reverse=_flip_relation("keywords:frequency", "relation"),
        reverse_exactness="exact",
        relation_param="relation",
    ),
    "keywords:letter_frequency": IFEvalKindInfo(
        param_types={"letter": str, "let_frequency": int, "let_relation": str},
        templates=(
            'In your response, the letter "{letter}" should appear {let_relation} {let_frequency} times.',
            'Use the letter "{letter}" {let_relation} {let_frequency} times in your answer.',
            'The letter "{letter}" must occur {let_relation} {let_frequency} times.',
        ),
        revise=_revise_letter,
        reverse=_flip_relation("keywords:letter_frequency", "let_relation"),
        reverse_exactness="exact",
        relation_param="let_relation",
        out_of_domain=_letter_out_of_domain,
    ),
    "language:response_language": IFEvalKindInfo(
        param_types={"language": str},
        templates=(
            "Your ENTIRE response should be in {language_name} language, no other language is allowed.",
            "Respond only in {language_name}.",
            "Write the whole answer in {language_name} and no other language.",
        ),
        revise=_revise_language,
        extra_fields=_language_name,
    ),
    "length_constraints:number_sentences": IFEvalKindInfo(
        param_types={"num_sentences": int, "relation": str},
        templates=(
            "Your response should contain {relation} {num_sentences} sentences.",
            "Answer with {relation} {num_sentences} sentences.",
            "Use {relation} {num_sentences} sentences in your response.",
        ),
        revise=_tighten_count("length_constraints:number_sentences", "num_sentences", "relation"),
        reverse=_flip_relation("length_constraints:number_sentences", "relation"),
        reverse_exactness="exact",
        relation_param="relation",
    ),
    "length_constraints:number_paragraphs": IFEvalKindInfo(
        param_types={"num_paragraphs": int},
        templates=(
            "There should be {num_paragraphs} paragraphs. Paragraphs are separated with the markdown "
            "divider: ***",
            "Write exactly {num_paragraphs} paragraphs, separated from each other by the markdown divider "
            "***.",
            "Your answer must have {num_paragraphs} paragraphs; put *** between consecutive paragraphs.",
        ),
        revise=_change_exact_count("length_constraints:number_paragraphs", "num_paragraphs"),
    ),
    "length_constraints:number_words": IFEvalKindInfo(
        param_types={"num_words": int, "relation": str},
        templates=(
            "Answer with {relation} {num_words} words.",
            "Your response should contain {relation} {num_words} words.",
            "Write {relation} {num_words} words.",
        ),
        revise=_tighten_count("length_constraints:number_words", "num_words", "relation"),
        reverse=_flip_relation("length_constraints:number_words", "relation"),
        reverse_exactness="exact",
        relation_param="relation",
    ),
    "length_constraints:nth_paragraph_first_word": IFEvalKindInfo(
        param_types={"num_paragraphs": int, "nth_paragraph": int, "first_word": str},
        templates=(
            "There should be {num_paragraphs} paragraphs. Paragraphs and only paragraphs are separated "
            "with each other by two new lines. The {nth_paragraph}-th paragraph must start with word "
            "{first_word}.",
            "Write {num_paragraphs} paragraphs separated by blank lines; paragraph number {nth_paragraph} "
            'must begin with the word "{first_word}".',
        ),
        revise=_revise_nth_paragraph,
    ),
    "detectable_content:number_placeholders": IFEvalKindInfo(
        param_types={"num_placeholders": int},
        templates=(
            "The response must contain at least {num_placeholders} placeholders represented by square "
            "brackets, such as [address].",
            "Include at least {num_placeholders} placeholders in square brackets, like [name].",
        ),
        revise=_tighten_count("detectable_content:number_placeholders", "num_placeholders", None),
    ),
    "detectable_content:postscript": IFEvalKindInfo(
        param_types={"postscript_marker": str},
        templates=(
            "At the end of your response, please explicitly add a postscript starting with "
            "{postscript_marker}",
            "End your answer with a postscript that begins with {postscript_marker}",
        ),
        revise=_swap_choice("detectable_content:postscript", "postscript_marker", POSTSCRIPT_MARKERS),
    ),
    "detectable_format:number_bullet_lists": IFEvalKindInfo(
        param_types={"num_bullets": int},
        templates=(
            "Your answer must contain exactly {num_bullets} bullet points. Use the markdown bullet points "
            "such as:\n* This is point 1.\n* This is point 2",
            "Give exactly {num_bullets} markdown bullet points (lines starting with * ).",
            "Format the answer as a list of exactly {num_bullets} markdown bullets.",
        ),
        revise=_change_exact_count("detectable_format:number_bullet_lists", "num_bullets"),
    ),
    "detectable_format:constrained_response": IFEvalKindInfo(
        param_types={},
        templates=(
            "Answer with one of the following options: ('My answer is yes.', 'My answer is no.', "
            "'My answer is maybe.')",
            "Reply with exactly one of: My answer is yes. / My answer is no. / My answer is maybe.",
        ),
        revise=_to_kind("change_case:english_capital"),
    ),
    "detectable_format:number_highlighted_sections": IFEvalKindInfo(
        param_types={"num_highlights": int},
        templates=(
            "Highlight at least {num_highlights} sections in your answer with markdown, i.e. *highlighted "
            "section*.",
            "Use markdown to highlight at least {num_highlights} sections, for example *like this*.",
        ),
        revise=_tighten_count("detectable_format:number_highlighted_sections", "num_highlights", None),
    ),
    "detectable_format:multiple_sections": IFEvalKindInfo(
        param_types={"section_spliter": str, "num_sections": int},
        templates=(
            "Your response must have {num_sections} sections. Mark the beginning of each section with "
            "{section_spliter} X, such as:\n{section_spliter} 1\n[content of section 1]",
            "Split the answer into {num_sections} sections, each starting with '{section_spliter} X'.",
        ),
        revise=_change_exact_count("detectable_format:multiple_sections", "num_sections"),
    ),
    "detectable_format:json_format": IFEvalKindInfo(
        param_types={},
        templates=(
            "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
            "Format your whole answer as valid JSON.",
        ),
        # JSON with more than one field contains commas.
        revise=_to_kind("punctuation:no_comma"),
    ),
    "detectable_format:title": IFEvalKindInfo(
        param_types={},
        templates=(
            "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
            "Give your answer a title in double angular brackets, like <<title>>.",
        ),
        revise=_to_kind("startend:quotation"),
    ),
    "combination:two_responses": IFEvalKindInfo(
        param_types={},
        templates=(
            "Give two different responses. Responses and only responses should be separated by 6 asterisk "
            "symbols: ******.",
            "Write two different answers separated by six asterisks (******) and nothing else between them.",
        ),
        # Two responses split by asterisks count as two *** paragraphs, so three fails.
        revise=_to_kind("length_constraints:number_paragraphs", {"num_paragraphs": 3}),
    ),
    "combination:repeat_prompt": IFEvalKindInfo(
        param_types={"prompt_to_repeat": str},
        templates=(
            "First repeat the request word for word without change, then give your answer (1. do not say "
            "any words or characters before repeating the request; 2. the request you need to repeat does "
            "not include this sentence)",
            "Begin by repeating the request exactly, word for word, then answer it.",
        ),
        revise=_revise_repeat_prompt,
    ),
    "startend:end_checker": IFEvalKindInfo(
        param_types={"end_phrase": str},
        templates=(
            'Finish your response with this exact phrase "{end_phrase}". No other words should follow this '
            "phrase.",
            'End your answer with the exact phrase "{end_phrase}" and nothing after it.',
            'Your last words must be "{end_phrase}".',
        ),
        revise=_revise_end_phrase,
    ),
    "change_case:capital_word_frequency": IFEvalKindInfo(
        param_types={"capital_frequency": int, "capital_relation": str},
        templates=(
            "In your response, words with all capital letters should appear {capital_relation} "
            "{capital_frequency} times.",
            "Use {capital_relation} {capital_frequency} words written in ALL CAPITALS.",
        ),
        revise=_tighten_count("change_case:capital_word_frequency", "capital_frequency", "capital_relation"),
        reverse=_flip_relation("change_case:capital_word_frequency", "capital_relation"),
        reverse_exactness="exact",
        relation_param="capital_relation",
    ),
    "change_case:english_capital": IFEvalKindInfo(
        param_types={},
        templates=(
            "Your entire response should be in English, and in all capital letters.",
            "Write the whole answer in English using only CAPITAL LETTERS.",
            "Respond in English, all in uppercase.",
        ),
        revise=_to_kind("change_case:english_lowercase"),
        reverse=lambda kw: ("change_case:english_lowercase", {}),
        reverse_exactness="approximate",
    ),
    "change_case:english_lowercase": IFEvalKindInfo(
        param_types={},
        templates=(
            "Your entire response should be in English, and in all lowercase letters. No capital letters "
            "are allowed.",
            "Write the whole answer in English using only lowercase letters.",
            "Respond in English, all in lowercase, with no capital letters at all.",
        ),
        revise=_to_kind("change_case:english_capital"),
        reverse=lambda kw: ("change_case:english_capital", {}),
        reverse_exactness="approximate",
    ),
    "punctuation:no_comma": IFEvalKindInfo(
        param_types={},
        templates=(
            "In your entire response, refrain from the use of any commas.",
            "Do not use any commas in your answer.",
            "Your response must not contain a single comma.",
        ),
        revise=_to_kind("keywords:frequency", {"keyword": ",", "frequency": 2, "relation": AT_LEAST}),
    ),
    "startend:quotation": IFEvalKindInfo(
        param_types={},
        templates=(
            "Wrap your entire response with double quotation marks.",
            "Put your whole answer inside double quotes.",
            'Enclose the entire response in " marks.',
        ),
        revise=_to_kind("detectable_format:title"),
    ),
}
