"""Deterministic synthetic instruction-following tasks for the embedded CPU default.

An instruction is a task template plus a few checkable constraints written with IFEval
ids and parameter names, so the constraint library (`ifpo.constraints`) can check and
reverse them. Responses are *written to a satisfaction vector*: for each constraint the
writer either satisfies or deliberately violates it, which lets us emit DPO, RPO and IOPO
training records whose labels are right by construction (and verified by the rule
checkers in tests).

This is the minimal generator the training core needs; the data-construction pipeline
grows it (more kinds, sampling from a model, judging) rather than replacing it. Train and
held-out splits use disjoint task templates so nothing leaks.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ifpo.constraints import Constraint, conflicts
from ifpo.io.atomic import atomic_write_text

# Bump when the generator's output changes, so cached data folders are regenerated.
GENERATOR_VERSION = 2

TOPICS = (
    "the ocean", "a mountain hike", "coffee", "city parks", "the library", "electric bikes", "a rainy day",
    "gardening", "the night sky", "board games", "fresh bread", "a train journey", "winter", "music lessons",
    "the museum", "recycling", "a small village", "honeybees", "the river", "public transport", "old maps",
    "a school garden", "kites", "the harbour", "birdwatching", "tea", "a farmers market", "lighthouses",
)
TRAIN_TEMPLATES = (
    "Write a short note about {topic}.",
    "Describe {topic} for a friend.",
    "Give a brief overview of {topic}.",
    "Write a few sentences about {topic}.",
    "Explain why people enjoy {topic}.",
    "Share some thoughts on {topic}.",
    "Write a message to a neighbour about {topic}.",
    "Summarise what you know about {topic}.",
)
HELDOUT_TEMPLATES = (
    "Tell a colleague about {topic}.",
    "Write a postcard that mentions {topic}.",
    "Draft a short blog entry on {topic}.",
)
ADJECTIVES = (
    "calm", "bright", "quiet", "busy", "gentle", "simple", "lovely", "useful", "famous", "green", "warm",
    "clear", "small", "open", "friendly", "steady", "curious", "local",
)
VERBS = ("brings", "offers", "gives", "shows", "creates", "shares", "keeps", "invites")
NOUNS = (
    "joy",
    "rest",
    "ideas",
    "stories",
    "comfort",
    "energy",
    "time",
    "friends",
    "peace",
    "hope",
    "colour",
    "light",
)
KEYWORDS = ("banana", "compass", "lantern", "puzzle", "velvet", "harvest", "meadow", "whistle")
END_PHRASES = ("Is there anything else I can help with?", "Let me know if you have additional questions.")

# Kind ids are IFEval's, so `ifpo.constraints` parses, renders, checks and reverses them.
LOWER, CAPITAL = "change_case:english_lowercase", "change_case:english_capital"
NO_COMMA, EXISTS, FORBIDDEN = "punctuation:no_comma", "keywords:existence", "keywords:forbidden_words"
END, WORDS, BULLETS, QUOTE = (
    "startend:end_checker",
    "length_constraints:number_words",
    "detectable_format:number_bullet_lists",
    "startend:quotation",
)
KINDS = (LOWER, CAPITAL, NO_COMMA, EXISTS, FORBIDDEN, END, WORDS, BULLETS, QUOTE)


@dataclass(frozen=True)
class Spec:
    """One constraint: an IFEval instruction id and its kwargs (a light handle on a library Constraint)."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)

    def as_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "kwargs": dict(self.kwargs)}

    @property
    def constraint(self) -> Constraint:
        """The library constraint (validates kind and kwargs)."""
        return Constraint(self.kind, self.kwargs)

    @classmethod
    def of(cls, constraint: Constraint) -> Spec:
        return cls(constraint.kind, copy.deepcopy(dict(constraint.kwargs)))

    def check(self, response: str) -> bool:
        """IFEval strict verdict of the library's rule checker."""
        return bool(self.constraint.check(response))


def render(spec: Spec, rng: random.Random) -> str:
    """Instruction text for a constraint: one of the library's paraphrases, chosen by `rng`."""
    return spec.constraint.render(rng)


def reverse(spec: Spec) -> Spec | None:
    """The library's reverse of `spec` (covers what it excludes), or None when it has none."""
    reversed_constraint = spec.constraint.reverse()
    return None if reversed_constraint is None else Spec.of(reversed_constraint)


def revise(spec: Spec, rng: random.Random) -> Spec:
    """A changed constraint a response written for `spec` will violate (for IOPO's x2).

    Not simply ``Constraint.revise``: the revision must be one the response writer below
    can realise *and* must exclude the original (so y1 fails x2 and y2 fails x1), e.g. the
    library tightens a word count, which a long-enough answer can still meet. So: reverse
    where the library has a reverse, the library's revision for kinds whose revision
    excludes the original (end phrase, exact bullet count), and quotes <-> no commas.
    """
    if spec.kind in (END, BULLETS):
        revised = spec.constraint.revise(rng)
        assert revised is not None
        return Spec.of(revised)
    reversed_spec = reverse(spec)
    if reversed_spec is not None:
        return reversed_spec
    if spec.kind == NO_COMMA:
        return Spec(QUOTE, {})
    return Spec(NO_COMMA, {})


# Beyond IFEval's table: a quoted response cannot also end with a bare phrase (the closing
# quote comes last), so the writer never combines the two.
_WRITER_EXCLUSIVE = (frozenset({END, QUOTE}),)


def compatible(kind: str, others: list[Spec]) -> bool:
    """False when `kind` conflicts with any of `others` (IFEval's conflict table, plus the writer's)."""
    return not any(
        conflicts(kind, other.kind) or frozenset({kind, other.kind}) in _WRITER_EXCLUSIVE for other in others
    )


def sample_constraints(rng: random.Random, k: int) -> list[Spec]:
    """k compatible constraints (IFEval's conflict rules: no two of one kind, no exclusive pair)."""
    chosen: list[Spec] = []
    kinds = list(KINDS)
    rng.shuffle(kinds)
    keywords = list(KEYWORDS)
    rng.shuffle(keywords)
    for kind in kinds:
        if len(chosen) == k:
            break
        if not compatible(kind, chosen):
            continue
        if kind == EXISTS:
            chosen.append(Spec(EXISTS, {"keywords": [keywords.pop()]}))
        elif kind == FORBIDDEN:
            chosen.append(Spec(FORBIDDEN, {"forbidden_words": [keywords.pop()]}))
        elif kind == END:
            chosen.append(Spec(END, {"end_phrase": rng.choice(END_PHRASES)}))
        elif kind == WORDS:
            chosen.append(
                Spec(
                    WORDS,
                    {
                        "relation": rng.choice(("less than", "at least")),
                        "num_words": rng.randrange(30, 61, 5),
                    },
                )
            )
        elif kind == BULLETS:
            chosen.append(Spec(BULLETS, {"num_bullets": rng.randint(2, 4)}))
        else:
            chosen.append(Spec(kind, {}))
    return chosen


def _sentence(rng: random.Random, topic: str, english: bool = False) -> str:
    """A short sentence; `english` adds function words so langdetect (case checks) says "en"."""
    if english:
        return f"It is the {topic} that {rng.choice(VERBS)} us {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    return f"{topic} {rng.choice(VERBS)} {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}".capitalize()


def _word_count(text: str) -> int:
    # The same tokenisation as IFEval's word counter (nltk RegexpTokenizer(r"\w+")).
    return len(re.findall(r"\w+", text))


def _draft_response(topic: str, want: dict[str, tuple[Spec, bool]], rng: random.Random) -> str:
    """One attempt at a response meeting/violating each wanted constraint (verified by the caller)."""
    short_topic = topic.replace("the ", "").replace("a ", "")
    keyword_sentences = []
    if EXISTS in want and want[EXISTS][1]:
        keyword_sentences.append(f"I think of a {want[EXISTS][0].kwargs['keywords'][0]}")
    if FORBIDDEN in want and not want[FORBIDDEN][1]:
        keyword_sentences.append(f"It reminds me of a {want[FORBIDDEN][0].kwargs['forbidden_words'][0]}")
    # Case checks also need langdetect to say "en", which it rarely does for all-capitals
    # texts of our telegraphic sentences; longer sentences with function words fix that,
    # but may not fit a tight word limit, so drafts alternate at random between the two.
    english = (LOWER in want or CAPITAL in want) and rng.random() < 0.5
    comma = ""
    if NO_COMMA in want and not want[NO_COMMA][1]:
        comma = ", truly, and well"
    elif NO_COMMA not in want and rng.random() < 0.5:
        comma = ", indeed"
    ending = ""
    if END in want:
        ending = want[END][0].kwargs["end_phrase"] if want[END][1] else "Thank you for reading."
    extra = sum(_word_count(t) for t in keyword_sentences) + _word_count(comma + " " + ending) + 4
    target, cap = rng.randint(14, 28), None
    if WORDS in want:
        spec, ok = want[WORDS]
        n, at_least = spec.kwargs["num_words"], spec.kwargs["relation"] == "at least"
        if at_least == ok:  # needs >= n words in total
            target = rng.randint(n + 2, n + 15) - extra
        else:  # needs < n words in total
            cap = n - 1 - extra
            target = rng.randint(max(4, cap - 12), max(4, cap))
    sentences: list[str] = []
    while sum(len(x.split()) for x in sentences) < target:
        sentence = _sentence(rng, short_topic, english)
        if (
            cap is not None
            and sentences
            and sum(len(x.split()) for x in sentences) + len(sentence.split()) > cap
        ):
            break
        sentences.append(sentence)
    sentences[1:1] = keyword_sentences
    sentences[0] = sentences[0] + comma
    body = " ".join(x + "." for x in sentences)
    if BULLETS in want:
        spec, ok = want[BULLETS]
        n = spec.kwargs["num_bullets"]
        count = n if ok else rng.choice([c for c in (0, n - 1, n + 1) if c >= 0 and c != n])
        while len(sentences) < count:
            sentences.append(_sentence(rng, short_topic, english))
        if count:
            per = max(1, len(sentences) // count)
            groups = [
                sentences[i * per : (i + 1) * per] if i < count - 1 else sentences[i * per :]
                for i in range(count)
            ]
            body = "\n".join("* " + " ".join(x + "." for x in g) for g in groups)
            if QUOTE in want and want[QUOTE][1]:
                body = "Here are my thoughts.\n" + body  # an opening quote must not land on a bullet line
    if ending:
        body = body + "\n" + ending
    if QUOTE in want and want[QUOTE][1]:
        body = f'"{body}"'
    if LOWER in want:
        body = body.lower() if want[LOWER][1] else body.upper()
    if CAPITAL in want:
        body = body.upper() if want[CAPITAL][1] else body.lower()
    return body


def write_response(
    topic: str,
    specs: list[Spec],
    satisfy: list[bool],
    rng: random.Random,
    also_satisfy: list[Spec] = (),  # type: ignore[assignment]
    max_tries: int = 200,
) -> str:
    """A response that satisfies exactly the constraints flagged True in `satisfy`.

    Drafts are verified with the library's strict rule checkers and redrawn (from `rng`, so
    deterministically) until every label holds: some checks are not under the writer's
    exact control (e.g. language detection of an all-capitals text). `also_satisfy` are
    checked but not drafted for (e.g. the reverses of the violated constraints).
    """
    want = {spec.kind: (spec, ok) for spec, ok in zip(specs, satisfy)}
    for _ in range(max_tries):
        text = _draft_response(topic, want, rng)
        if all(spec.check(text) == ok for spec, ok in zip(specs, satisfy)) and all(
            spec.check(text) for spec in also_satisfy
        ):
            return text
    raise ValueError(f"synthetic writer could not realise {list(zip(specs, satisfy))} in {max_tries} drafts")


@dataclass
class Task:
    """One synthetic instruction: task text, constraints, and its topic for the writer."""

    uid: str
    topic: str
    task: str
    specs: list[Spec]

    def messages(self, specs: list[Spec] | None, rng: random.Random) -> list[dict[str, str]]:
        """System-prompt style prompt (the RPO setting): constraints in the system message."""
        specs = self.specs if specs is None else specs
        lines = "\n".join(f"{i + 1}. {render(s, rng)}" for i, s in enumerate(specs))
        system = f"You are a helpful assistant. Follow every constraint below.\n{lines}"
        return [{"role": "system", "content": system}, {"role": "user", "content": self.task}]


def generate_tasks(
    n: int, split: str, seed: int, min_constraints: int = 2, max_constraints: int = 4
) -> list[Task]:
    """`n` tasks for `split` ("train" or "heldout"), deterministic in `seed`."""
    templates = TRAIN_TEMPLATES if split == "train" else HELDOUT_TEMPLATES
    rng = random.Random(f"{seed}-{split}")
    tasks = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        specs = sample_constraints(rng, rng.randint(min_constraints, max_constraints))
        tasks.append(Task(f"{split}-{i}", topic, rng.choice(templates).format(topic=topic), specs))
    return tasks


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def rpo_pairs(
    task: Task, rng: random.Random, samples: int = 3, min_margin: int = 1
) -> Iterator[dict[str, Any]]:
    """RPO records: reverse the constraints the chosen response fails, margin = Hamming distance.

    Keeps pairs with distance ``>= min_margin`` (the data config's historical meaning).
    """
    vectors = []
    for _ in range(samples):
        vector = tuple(rng.random() < 0.5 for _ in task.specs)
        if vector not in vectors:
            vectors.append(vector)
    responses = [
        write_response(
            task.topic,
            task.specs,
            list(v),
            rng,
            [r for s, ok in zip(task.specs, v) if not ok and (r := reverse(s)) is not None],
        )
        for v in vectors
    ]
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            g = sum(a != b for a, b in zip(vectors[i], vectors[j]))
            if g < min_margin:
                continue
            for win, lose in ((i, j), (j, i)):
                rewritten = [s if ok else reverse(s) for s, ok in zip(task.specs, vectors[win])]
                if any(s is None for s in rewritten):
                    continue  # a failed constraint without a reverse cannot be rewritten
                specs = [s for s in rewritten if s is not None]
                yield {
                    "prompt": task.messages(specs, rng),
                    "chosen": _assistant(responses[win]),
                    "rejected": _assistant(responses[lose]),
                    "margin": g,
                    "meta": {
                        "source": task.uid,
                        "constraints": [s.as_record() for s in specs],
                        "original_constraints": [s.as_record() for s in task.specs],
                        "chosen_satisfied": list(vectors[win]),
                        "rejected_satisfied": list(vectors[lose]),
                    },
                }


def dpo_pair(task: Task, rng: random.Random, samples: int = 3) -> dict[str, Any] | None:
    """DPO baseline: same instruction, most-satisfying vs least-satisfying response; ties skipped."""
    vectors = [[rng.random() < 0.5 for _ in task.specs] for _ in range(samples)]
    scores = [sum(v) for v in vectors]
    best, worst = scores.index(max(scores)), scores.index(min(scores))
    if scores[best] == scores[worst]:
        return None
    return {
        "prompt": task.messages(None, rng),
        "chosen": _assistant(write_response(task.topic, task.specs, vectors[best], rng)),
        "rejected": _assistant(write_response(task.topic, task.specs, vectors[worst], rng)),
        "meta": {
            "source": task.uid,
            "constraints": [s.as_record() for s in task.specs],
            "chosen_satisfied": vectors[best],
            "rejected_satisfied": vectors[worst],
        },
    }


def _revisable(task: Task, rng: random.Random) -> list[tuple[int, Spec]]:
    """(index, revision) for constraints whose revision fits with the other constraints (IFEval conflicts)."""
    options = []
    for i, spec in enumerate(task.specs):
        revised = revise(spec, rng)
        if compatible(revised.kind, [s for j, s in enumerate(task.specs) if j != i]):
            options.append((i, revised))
    return options


def iopo_quad(task: Task, rng: random.Random) -> dict[str, Any]:
    """IOPO quad: x2 revises one or two of x1's constraints; y1 fits only x1, y2 only x2."""
    options = _revisable(task, rng)
    if not options:
        # E.g. quotes + no commas revise into each other. Delete one and add a keyword
        # y1 lacks instead (IOPO's delete + add); y2 then breaks the deleted one.
        used = {
            w for s in task.specs for w in s.kwargs.get("keywords", []) + s.kwargs.get("forbidden_words", [])
        }
        fresh = Spec(EXISTS, {"keywords": [rng.choice([w for w in KEYWORDS if w not in used])]})
        options = [
            (i, fresh)
            for i in range(len(task.specs))
            if compatible(EXISTS, [s for j, s in enumerate(task.specs) if j != i])
        ]
    changed = dict(rng.sample(options, min(len(options), rng.choice((1, 2)))))
    specs2 = [changed.get(i, s) for i, s in enumerate(task.specs)]
    if len({s.kind for s in specs2}) < len(specs2):  # two revisions landed on one kind: keep one
        first = min(changed)
        changed = {first: changed[first]}
        specs2 = [changed.get(i, s) for i, s in enumerate(task.specs)]
    # Same paraphrase seed for both, so x1 and x2 differ only in the changed constraints.
    text_seed = rng.random()
    # y2 must also *violate* x1: where a revision changed the kind, break the original too.
    kinds2 = {s.kind for s in specs2}
    dropped = [s for i, s in enumerate(task.specs) if i in changed and s.kind not in kinds2]
    # ... and y1 must violate x2: break the constraints x2 introduces with a new kind.
    kinds1 = {s.kind for s in task.specs}
    added = [s for s in specs2 if s.kind not in kinds1]
    return {
        "x1": task.messages(task.specs, random.Random(text_seed)),
        "x2": task.messages(specs2, random.Random(text_seed)),
        "y1": _assistant(
            write_response(
                task.topic, task.specs + added, [True] * len(task.specs) + [False] * len(added), rng
            )
        ),
        "y2": _assistant(
            write_response(task.topic, specs2 + dropped, [True] * len(specs2) + [False] * len(dropped), rng)
        ),
        "meta": {
            "source": task.uid,
            "constraints_x1": [s.as_record() for s in task.specs],
            "constraints_x2": [s.as_record() for s in specs2],
        },
    }


def build_records(
    kind: str, tasks: list[Task], seed: int, samples: int = 3, min_margin: int = 1
) -> list[dict]:
    """Records of `kind` ("rpo", "dpo", "iopo" or "sft") for the given tasks."""
    rng = random.Random(f"records-{kind}-{seed}")
    records: list[dict] = []
    for task in tasks:
        if kind == "rpo":
            records.extend(rpo_pairs(task, rng, samples, min_margin))
        elif kind in ("dpo", "sft"):
            record = dpo_pair(task, rng, samples)
            if record is not None:
                records.append(record)
        elif kind == "iopo":
            records.append(iopo_quad(task, rng))
        else:
            raise ValueError(f"unknown synthetic record kind {kind!r}; expected rpo, dpo, iopo or sft")
    return records


def write_jsonl(records: list[dict], path: Path) -> Path:
    atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in records))
    return path


def corpus(seed: int = 0, n: int = 400) -> Iterator[str]:
    """Text covering prompts and responses, for training the tiny tokenizer."""
    for split in ("train", "heldout"):
        tasks = generate_tasks(n, split, seed)
        for kind in ("rpo", "iopo"):
            for record in build_records(kind, tasks, seed):
                for value in record.values():
                    if isinstance(value, list):
                        for message in value:
                            yield message["content"]
