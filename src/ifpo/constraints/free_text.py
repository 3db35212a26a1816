"""Free-text constraints: not rule-checkable, reversed by an LLM.

The judge/LLM client lives elsewhere; this module only defines the hook
(:class:`FreeTextReverser`) and the instructions that the reversing model gets,
following the rules the RPO authors (arXiv 2505.22172) give for constructing a
reverse constraint.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ifpo.constraints.constraint import Constraint
from ifpo.constraints.errors import ConstraintError
from ifpo.constraints.registry import FREE_TEXT

REVERSE_RULES_PROMPT = """\
You rewrite one constraint of an instruction into its reverse constraint.

Rules:
1. Flip the modality or the condition: "must X" becomes "must not X", "must not X"
   becomes "must X"; "only when A" becomes "only when not A".
2. The reverse must cover every case the original excludes: any response that
   violates the original constraint must satisfy the reverse.
3. Keep the boundary value valid on both sides, so no case falls between the two:
   "at least 3" becomes "at most 3", "no more than 200 words" becomes
   "no fewer than 200 words".
4. Never weaken into an optional statement: do not write "may", "can", "is allowed to"
   or "optionally"; the reverse is as binding as the original.
5. Keep the topic, the object and all other details of the constraint unchanged;
   change only what is needed to reverse it.
6. Output only the reversed constraint text, with no explanation.

Constraint: {constraint}
Reversed constraint:"""


@runtime_checkable
class FreeTextReverser(Protocol):
    """Anything that turns a free-text constraint into its reverse (e.g. an LLM client)."""

    def __call__(self, constraint_text: str) -> str: ...


def free_text(text: str) -> Constraint:
    """A free-text constraint (checked by an LLM judge, never by rules)."""
    return Constraint(FREE_TEXT, {"text": text})


def reverse_prompt(constraint_text: str) -> str:
    """The full prompt to send to the reversing model."""
    return REVERSE_RULES_PROMPT.format(constraint=constraint_text)


def reverse_free_text(constraint: Constraint, reverser: FreeTextReverser) -> Constraint:
    """Reverse a free-text constraint with ``reverser``; rejects empty or unchanged output."""
    if constraint.kind != FREE_TEXT:
        raise ConstraintError(f"reverse_free_text needs a {FREE_TEXT!r} constraint, got {constraint.kind!r}",
                              field="kind", reason="not_free_text")
    original = constraint.kwargs["text"]
    reversed_text = reverser(original).strip()
    if not reversed_text or reversed_text == original.strip():
        raise ConstraintError(f"reverser returned no usable reverse for {original!r}: {reversed_text!r}",
                              field="text", reason="bad_reverse")
    return free_text(reversed_text)
