"""Train and save the small byte-level BPE tokenizer of the embedded tiny default.

Run once by maintainers (`python -m ifpo.tools.train_tokenizer`); the result is committed
under `src/ifpo/assets/tiny_tokenizer/` so no run ever needs a hub download. Byte-level
BPE means any text still tokenizes (no unknown tokens), only less compactly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ifpo.data.synthetic import corpus

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets" / "tiny_tokenizer"
SPECIAL = {"bos_token": "<|bos|>", "eos_token": "<|end|>", "pad_token": "<|pad|>", "unk_token": "<|unk|>"}
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
# A minimal chat template: role tag, content, end-of-turn token; generation prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train(out: Path = DEFAULT_OUT, vocab_size: int = 1024, seed: int = 0) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()) + ROLE_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, **SPECIAL, additional_special_tokens=ROLE_TOKENS
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 2048
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return fast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--vocab-size", type=int, default=1024)
    args = parser.parse_args()
    tok = train(args.out, args.vocab_size)
    print(f"saved tokenizer with {len(tok)} tokens to {args.out}")


if __name__ == "__main__":
    main()
