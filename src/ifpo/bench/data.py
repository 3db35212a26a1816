"""Benchmark workload: instruction-following pairs/quads as text, an 8192-token tokenizer, a model.

Prompts are a system-style task description plus 3 to 6 numbered constraints (about 190
tokens), responses about 55 tokens, lengths varying per example. Words are drawn Zipf-like
from a generated lexicon and the tokenizer is a word-level one trained in-process with
`tokenizers` on the same text, so both TRL and ifpo tokenize identical strings into identical
ids without any download or committed file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

VOCAB_SIZE = 8192
SPECIALS = ["<s>", "</s>", "<pad>", "<unk>"]
MODEL_SHAPE = {  # the benchmark model: a random-init 4-layer Llama
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 688,
    "vocab_size": VOCAB_SIZE,
}


def _lexicon(rng: random.Random, size: int) -> list[str]:
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(words)


class TextSource:
    """Deterministic pseudo-text with a Zipf-like word distribution."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.words = _lexicon(self.rng, VOCAB_SIZE - 200)  # all in the vocabulary: no <unk>
        self.weights = [1.0 / (rank + 1) for rank in range(len(self.words))]

    def words_(self, count: int) -> str:
        return " ".join(self.rng.choices(self.words, self.weights, k=count))

    def prompt(self, target: int) -> str:
        """A task description plus 3-6 numbered constraints, about `target` words in all."""
        constraints = self.rng.randint(3, 6)
        description = max(20, target - constraints * 14)
        lines = [f"system {self.words_(description)}"]
        for number in range(1, constraints + 1):
            lines.append(f"{number} {self.words_(self.rng.randint(9, 19))}")
        return " ".join(lines)

    def response(self, target: int) -> str:
        # Leading space: prompt + response splits exactly at the boundary (TRL tokenises the
        # concatenation). Explicit " </s>": TRL appends EOS only when it is missing.
        return " " + self.words_(max(8, target)) + " </s>"


def lengths(rng: random.Random, mean: int, spread: int) -> int:
    return max(1, int(rng.gauss(mean, spread)))


def make_records(
    kind: str, count: int, prompt_len: int = 180, response_len: int = 54, seed: int = 0
) -> list[dict[str, Any]]:
    """`pair` records {prompt, chosen, rejected, margin} or `quad` records {x1, x2, y1, y2, margin}."""
    source = TextSource(seed)
    rng = random.Random(seed + 1)
    records = []
    for _ in range(count):
        if kind == "pair":
            records.append(
                {
                    "prompt": source.prompt(lengths(rng, prompt_len, 20)),
                    "chosen": source.response(lengths(rng, response_len, 12)),
                    "rejected": source.response(lengths(rng, response_len, 12)),
                    "margin": float(rng.randint(1, 3)),
                }
            )
        else:
            records.append(
                {
                    "x1": source.prompt(lengths(rng, prompt_len, 20)),
                    "x2": source.prompt(lengths(rng, prompt_len, 20)),
                    "y1": source.response(lengths(rng, response_len, 12)),
                    "y2": source.response(lengths(rng, response_len, 12)),
                    "margin": 1.0,
                }
            )
    return records


def train_tokenizer(folder: Path, seed: int = 0) -> PreTrainedTokenizerFast:
    """Train the 8192-entry word-level tokenizer on the generator's text; save it to `folder`."""
    source = TextSource(seed)
    corpus = [source.prompt(180) for _ in range(1000)]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.train_from_iterator(
        corpus, trainers.WordLevelTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIALS)
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.save_pretrained(folder)
    return fast


def write_model_config(folder: Path, tokenizer: PreTrainedTokenizerFast, **shape: int) -> Path:
    """A LlamaForCausalLM config.json for random init (the issue's shape unless overridden)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **MODEL_SHAPE,
        **shape,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def tokenize_records(
    records: list[dict[str, Any]], tokenizer: PreTrainedTokenizerFast
) -> list[dict[str, Any]]:
    """ifpo's tokenised example layout ({field}_ids); responses already end with EOS."""
    out = []
    for record in records:
        example: dict[str, Any] = {"margin": record["margin"]}
        for field, text in record.items():
            if field == "margin":
                continue
            example[f"{field}_ids"] = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(example)
    return out


def prepare(workdir: Path) -> None:
    """A bench work folder: the trained word-level tokenizer and a small model config next to it."""
    tokenizer = train_tokenizer(workdir / "tokenizer")
    write_model_config(workdir / "model", tokenizer)
