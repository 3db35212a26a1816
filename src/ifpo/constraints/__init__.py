"""Constraint library: IFEval/IFBench constraint kinds with checking, rendering, reverse and revision.

Public API:

* :class:`Constraint` -- ``kind`` + ``kwargs``; ``render(rng_or_index)``,
  ``check(response, loose=False)`` (``None`` = needs an LLM judge), ``reverse()``,
  ``reverse_exactness``, ``revise(rng)``, ``checkable``.
* :class:`Instruction` -- ``prompt`` + ``constraints`` + ``id``.
* ``KINDS`` / :func:`get_kind` -- the registry (25 IFEval ids, the IFBench ids, ``free_text``).
* :func:`parse_ifeval_record`, :func:`load_ifeval_jsonl` -- read IFEval-format data.
* :func:`conflicts` -- IFEval's table of kinds that must not be combined.
* :class:`ConstraintError`, :class:`ConstraintFormatError` -- errors with ``source``, ``line``, ``field``.

Importing this package wires NLTK to an offline Punkt model and seeds
langdetect (see :mod:`ifpo.constraints.offline_nltk`); it never downloads.
"""

from ifpo.constraints.conflicts import conflicts
from ifpo.constraints.constraint import Constraint, Instruction
from ifpo.constraints.errors import ConstraintError, ConstraintFormatError, ResourceUnavailableError
from ifpo.constraints.free_text import REVERSE_RULES_PROMPT, FreeTextReverser, free_text, reverse_free_text
from ifpo.constraints.parsing import load_ifeval_jsonl, parse_ifeval_record
from ifpo.constraints.registry import FREE_TEXT, IFBENCH_KIND_IDS, IFEVAL_KIND_IDS, KINDS, KindSpec, get_kind

__all__ = [
    "FREE_TEXT",
    "IFBENCH_KIND_IDS",
    "IFEVAL_KIND_IDS",
    "KINDS",
    "REVERSE_RULES_PROMPT",
    "Constraint",
    "ConstraintError",
    "ConstraintFormatError",
    "FreeTextReverser",
    "Instruction",
    "KindSpec",
    "ResourceUnavailableError",
    "conflicts",
    "free_text",
    "get_kind",
    "load_ifeval_jsonl",
    "parse_ifeval_record",
    "reverse_free_text",
]
