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

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

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
    "joy", "rest", "ideas", "stories", "comfort", "energy", "time", "friends", "peace", "hope", "colour", "light",
)
KEYWORDS = ("banana", "compass", "lantern", "puzzle", "velvet", "harvest", "meadow", "whistle")
END_PHRASES = ("Is there anything else I can help with?", "Let me know if you have additional questions.")

# Kind ids are IFEval's, so `ifpo.constraints` parses these specs unchanged.
LOWER, CAPITAL = "change_case:english_lowercase", "change_case:english_capital"
NO_COMMA, EXISTS, FORBIDDEN = "punctuation:no_comma", "keywords:existence", "keywords:forbidden_words"
END, WORDS, BULLETS, QUOTE = (
    "startend:end_checker",
    "length_constraints:number_words",
    "detectable_format:number_bullet_lists",
    "startend:quotation",
)
KINDS = (LOWER, CAPITAL, NO_COMMA, EXISTS, FORBIDDEN, END, WORDS, BULLETS, QUOTE)
_EXCLUSIVE = ({LOWER, CAPITAL},)


@dataclass(frozen=True)
class Spec:
    """One constraint: an IFEval instruction id and its kwargs."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)

    def as_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "kwargs": dict(self.kwargs)}


def render(spec: Spec, rng: random.Random) -> str:
    """Instruction text for a constraint (a few paraphrases, chosen by `rng`)."""
    kw = spec.kwargs
    options = {
        LOWER: ["Your entire response should be in English, and in all lowercase letters.",
                "Write everything in lowercase letters only."],
        CAPITAL: ["Your entire response should be in English, and in all capital letters.",
                  "Write your whole answer in capital letters."],
        NO_COMMA: ["Do not use any commas in your response.", "Avoid commas entirely."],
        END: [f'Finish your response with this exact phrase: "{kw.get("end_phrase")}".',
              f'End your answer with the phrase "{kw.get("end_phrase")}".'],
        QUOTE: ["Wrap your entire response with double quotation marks.",
                "Put the whole answer inside double quotes."],
    }
    if spec.kind in options:
        return rng.choice(options[spec.kind])
    if spec.kind == EXISTS:
        return f"Include the keyword {kw['keywords'][0]} in your response."
    if spec.kind == FORBIDDEN:
        return f"Do not include the word {kw['forbidden_words'][0]} in your response."
    if spec.kind == WORDS:
        return f"Answer with {kw['relation']} {kw['num_words']} words."
    if spec.kind == BULLETS:
        return f"Your answer must contain exactly {kw['num_bullets']} bullet points in markdown format, like: * point."
    raise ValueError(f"synthetic generator cannot render constraint kind {spec.kind!r}")


def reverse(spec: Spec) -> Spec | None:
    """The constraint covering every case `spec` excludes, or None when there is none.

    Mirrors the reverse rules of the constraint library for the kinds this generator uses.
    """
    kw = spec.kwargs
    if spec.kind == WORDS:
        flipped = "at least" if kw["relation"] == "less than" else "less than"
        return Spec(WORDS, {"relation": flipped, "num_words": kw["num_words"]})
    if spec.kind == LOWER:
        return Spec(CAPITAL, {})
    if spec.kind == CAPITAL:
        return Spec(LOWER, {})
    if spec.kind == EXISTS:
        return Spec(FORBIDDEN, {"forbidden_words": list(kw["keywords"])})
    if spec.kind == FORBIDDEN:
        return Spec(EXISTS, {"keywords": list(kw["forbidden_words"])})
    return None


def revise(spec: Spec, rng: random.Random) -> Spec:
    """A changed constraint a response written for `spec` will violate (for IOPO's x2)."""
    kw = spec.kwargs
    if spec.kind == END:
        return Spec(END, {"end_phrase": next(p for p in END_PHRASES if p != kw["end_phrase"])})
    if spec.kind == BULLETS:
        return Spec(BULLETS, {"num_bullets": kw["num_bullets"] + rng.choice((1, 2))})
    reversed_spec = reverse(spec)
    if reversed_spec is not None:
        return reversed_spec
    if spec.kind == NO_COMMA:
        # No exact reverse exists; "use no commas" -> the revision drops it in favour of quotes.
        return Spec(QUOTE, {})
    return Spec(NO_COMMA, {})


def sample_constraints(rng: random.Random, k: int) -> list[Spec]:
    """k compatible constraints (no two of the same kind, no mutually exclusive pair)."""
    chosen: list[Spec] = []
    kinds = list(KINDS)
    rng.shuffle(kinds)
    keywords = list(KEYWORDS)
    rng.shuffle(keywords)
    for kind in kinds:
        if len(chosen) == k:
            break
        if any(kind in group and any(c.kind in group for c in chosen) for group in _EXCLUSIVE):
            continue
        if kind == EXISTS:
            chosen.append(Spec(EXISTS, {"keywords": [keywords.pop()]}))
        elif kind == FORBIDDEN:
            chosen.append(Spec(FORBIDDEN, {"forbidden_words": [keywords.pop()]}))
        elif kind == END:
            chosen.append(Spec(END, {"end_phrase": rng.choice(END_PHRASES)}))
        elif kind == WORDS:
            chosen.append(Spec(WORDS, {"relation": rng.choice(("less than", "at least")),
                                       "num_words": rng.randrange(30, 61, 5)}))
        elif kind == BULLETS:
            chosen.append(Spec(BULLETS, {"num_bullets": rng.randint(2, 4)}))
        else:
            chosen.append(Spec(kind, {}))
    return chosen


def _sentence(rng: random.Random, topic: str) -> str:
    return f"{topic} {rng.choice(VERBS)} {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}".capitalize()


def write_response(topic: str, specs: list[Spec], satisfy: list[bool], rng: random.Random) -> str:
    """A response that satisfies exactly the constraints flagged True in `satisfy`."""
    want = {spec.kind: (spec, ok) for spec, ok in zip(specs, satisfy)}
    target_words = rng.randint(14, 28)
    if WORDS in want:
        spec, ok = want[WORDS]
        n, at_least = spec.kwargs["num_words"], spec.kwargs["relation"] == "at least"
        # Other constraints add at most ~8 words, so keep a safety gap below the limit.
        long_enough = rng.randint(n + 2, n + 15)
        short_enough = rng.randint(max(8, n - 20), n - 9)
        target_words = long_enough if at_least == ok else short_enough
    sentences: list[str] = []
    while sum(len(s.split()) for s in sentences) < target_words:
        sentences.append(_sentence(rng, topic.replace("the ", "").replace("a ", "")))
    keyword_sentences = []
    if EXISTS in want and want[EXISTS][1]:
        keyword_sentences.append(f"I think of a {want[EXISTS][0].kwargs['keywords'][0]}")
    if FORBIDDEN in want and not want[FORBIDDEN][1]:
        keyword_sentences.append(f"It reminds me of a {want[FORBIDDEN][0].kwargs['forbidden_words'][0]}")
    sentences[1:1] = keyword_sentences
    if NO_COMMA in want and not want[NO_COMMA][1]:
        sentences[0] = sentences[0] + ", truly, and well"
    elif NO_COMMA not in want and rng.random() < 0.5:
        sentences[0] = sentences[0] + ", indeed"
    if BULLETS in want:
        spec, ok = want[BULLETS]
        n = spec.kwargs["num_bullets"]
        count = n if ok else rng.choice([c for c in (0, n - 1, n + 1) if c >= 0 and c != n])
        while len(sentences) < count:
            sentences.append(_sentence(rng, topic))
        if count == 0:
            body = " ".join(s + "." for s in sentences)
        else:
            per = max(1, len(sentences) // count)
            groups = [sentences[i * per:(i + 1) * per] if i < count - 1 else sentences[i * per:] for i in range(count)]
            body = "\n".join("* " + " ".join(s + "." for s in g) for g in groups)
    else:
        body = " ".join(s + "." for s in sentences)
    if END in want:
        spec, ok = want[END]
        body = body + "\n" + spec.kwargs["end_phrase"] if ok else body + "\nThank you for reading."
    if QUOTE in want:
        body = f'"{body}"' if want[QUOTE][1] else body
    if LOWER in want:
        body = body.lower() if want[LOWER][1] else body.upper()
    if CAPITAL in want:
        body = body.upper() if want[CAPITAL][1] else body.lower()
    return body


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


def generate_tasks(n: int, split: str, seed: int, min_constraints: int = 2, max_constraints: int = 4) -> list[Task]:
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


def rpo_pairs(task: Task, rng: random.Random, samples: int = 3, min_margin: int = 1) -> Iterator[dict[str, Any]]:
    """RPO records: reverse the constraints the chosen response fails, margin = Hamming distance."""
    vectors = []
    for _ in range(samples):
        vector = tuple(rng.random() < 0.5 for _ in task.specs)
        if vector not in vectors:
            vectors.append(vector)
    responses = [write_response(task.topic, task.specs, list(v), rng) for v in vectors]
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
                    "meta": {"source": task.uid, "constraints": [s.as_record() for s in specs]},
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
        "meta": {"source": task.uid, "constraints": [s.as_record() for s in task.specs]},
    }


def iopo_quad(task: Task, rng: random.Random) -> dict[str, Any]:
    """IOPO quad: x2 revises one or two of x1's constraints; y1 fits only x1, y2 only x2."""
    n_changed = min(len(task.specs), rng.choice((1, 2)))
    changed = set(rng.sample(range(len(task.specs)), n_changed))
    specs2 = [revise(s, rng) if i in changed else s for i, s in enumerate(task.specs)]
    # Same paraphrase seed for both, so x1 and x2 differ only in the changed constraints.
    text_seed = rng.random()
    # y2 must also *violate* x1: where a revision changed the kind, break the original too.
    kinds2 = {s.kind for s in specs2}
    dropped = [s for i, s in enumerate(task.specs) if i in changed and s.kind not in kinds2]
    return {
        "x1": task.messages(task.specs, random.Random(text_seed)),
        "x2": task.messages(specs2, random.Random(text_seed)),
        "y1": _assistant(write_response(task.topic, task.specs, [True] * len(task.specs), rng)),
        "y2": _assistant(
            write_response(task.topic, specs2 + dropped, [True] * len(specs2) + [False] * len(dropped), rng)
        ),
        "meta": {
            "source": task.uid,
            "constraints_x1": [s.as_record() for s in task.specs],
            "constraints_x2": [s.as_record() for s in specs2],
        },
    }


def build_records(kind: str, tasks: list[Task], seed: int, samples: int = 3, min_margin: int = 1) -> list[dict]:
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    tmp.replace(path)
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
