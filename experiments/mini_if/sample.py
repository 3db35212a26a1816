"""Stage 3: sample N responses per preference instruction from the SFT policy, once for all builders.

``build.py`` samples inside each build; the three builders (DPO, RPO, IOPO) must see the *same*
responses, and sampling is the slow part on a CPU, so the study samples once here with the
project's own sampler (``ifpo.sampling.build_sampler``, the ``sampler=hf`` backend) and prompt
rendering (``ifpo.builders.items``, the builders' ``prompt_style=system``), and every build then
reads the file through ``sampler=file``. The output is that backend's format:
``{"id": instruction key, "responses": [...]}`` per line.

IOPO also needs answers to its edited instructions x2 (the paper samples them from the model).
The file backend looks answers up by instruction id whatever the prompt, so ``--iopo-out``
writes a second file whose rows hold the same x1 answers followed by the model's answers to
x2 (x2 computed exactly as the IOPO builder will); the IOPO build reads it with twice the
sample count and, as always, keeps y1/y2 only when the rule checks say they fit.

``--writer-samples K`` appends K answers of the synthetic writer (random satisfaction vectors)
per instruction. Only the smoke run uses it (its 3-step SFT model answers gibberish, which
would leave the builders nothing to pair); the full study samples the model only.

    python -m experiments.mini_if.sample INSTRUCTIONS.jsonl SFT_HF_DIR OUT.jsonl -n 4 --max-new-tokens 160
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from omegaconf import OmegaConf

from ifpo.builders.iopo import build_x2
from ifpo.builders.items import load_instructions, sample_request
from ifpo.data import synthetic
from ifpo.sampling import build_sampler
from ifpo.sampling.base import derive_seed

MODEL_CFG = {
    "name_or_path": None,
    "config": None,
    "tokenizer": None,
    "dtype": "float32",
    "attn_implementation": "sdpa",
    "gradient_checkpointing": False,
}


def writer_answers(constraints, topic_hint: str, k: int, seed: int) -> list[str]:
    """k synthetic-writer answers: the first meets every constraint, the others each with probability 1/2."""
    specs = [synthetic.Spec(c.kind, dict(c.kwargs)) for c in constraints]
    rng = random.Random(seed)
    out = []
    for index in range(k):
        vector = [index == 0 or rng.random() < 0.5 for _ in specs]
        try:
            out.append(synthetic.write_response(topic_hint, specs, vector, rng))
        except ValueError:
            out.append(synthetic.write_response(topic_hint, [], [], rng))
    return out


def iopo_x2(items, answers, seed: int, ops: dict[str, float], max_ops: int) -> dict[str, list]:
    """x2 constraints per item, computed exactly as ``build.py builder=iopo`` will (same seed, pool, y1).

    The builder takes y1 = the first answer meeting all of x1 and edits x1 with an RNG seeded by
    (seed, "x2", id) over the pool of every checkable constraint in first-seen order; repeating
    that here lets the model answer x2 before the build, so the build itself needs no model.
    """
    pool = list(dict.fromkeys(c for item in items for c in item.constraints if c.checkable))
    out = {}
    for item, responses in zip(items, answers):
        y1 = next(
            (r for r in responses if r.strip() and all(c.check(r) for c in item.constraints if c.checkable)),
            None,
        )
        if y1 is None:
            continue
        rng = random.Random(derive_seed(seed, "x2", item.id))
        built = build_x2(item.constraints, y1, rng, ops, pool, max_ops, prompt=item.last_user)
        if built is not None:
            out[item.id] = built[0]
    return out


def _write(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    tmp.replace(path)


def _topic(item) -> str:
    return item.last_user.rstrip(".").split(" ", 3)[-1]


def sample_file(
    instructions: Path,
    model_dir: Path,
    out: Path,
    n: int,
    max_new_tokens: int,
    temperature: float,
    batch_size: int,
    seed: int,
    writer_samples: int = 0,
    iopo_out: Path | None = None,
    iopo_ops: dict[str, float] | None = None,
    iopo_max_ops: int = 2,
    system_prompt: str = "You are a helpful assistant.",
    backend: str = "hf",
) -> dict:
    """Write ``out`` (n answers to each x1) and, with ``iopo_out``, the IOPO file (x1 answers, then x2's)."""
    items, _ = load_instructions(instructions, "raise", system_prompt)
    sampler_cfg = OmegaConf.create(
        {
            "backend": backend,
            "checkpoint": str(model_dir),
            "device": None,
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": 1.0,
            "do_sample": True,
            "batch_size": batch_size,
        }
    )
    sampler = build_sampler(sampler_cfg, model_cfg=OmegaConf.create(MODEL_CFG))
    answers = sampler.sample(
        [sample_request(it, it.constraints, "system") for it in items], n, derive_seed(seed, "mini_if-x1")
    )
    if writer_samples:
        answers = [
            a + writer_answers(it.constraints, _topic(it), writer_samples, derive_seed(seed, "writer", it.id))
            for it, a in zip(items, answers)
        ]
    _write(out, [{"id": it.id, "responses": a} for it, a in zip(items, answers)])
    stats = {
        "instructions": len(items),
        "model_samples_per_instruction": n,
        "writer_samples_per_instruction": writer_samples,
        "empty_responses": sum(not r.strip() for a in answers for r in a),
    }
    if iopo_out is not None:
        x2 = iopo_x2(
            items, answers, seed, iopo_ops or {"add": 1.0, "delete": 1.0, "revise": 1.0}, iopo_max_ops
        )
        todo = [it for it in items if it.id in x2]
        answers2 = (
            sampler.sample(
                [sample_request(it, x2[it.id], "system") for it in todo], n, derive_seed(seed, "mini_if-x2")
            )
            if todo
            else []
        )
        if writer_samples:
            answers2 = [
                a + writer_answers(x2[it.id], _topic(it), writer_samples, derive_seed(seed, "writer2", it.id))
                for it, a in zip(todo, answers2)
            ]
        extra = {it.id: a for it, a in zip(todo, answers2)}
        width = n + writer_samples
        # Every row has 2 * width answers (x1's first; x2's, or x1's again where there is no x2), so
        # builder.num_samples = 2 * width reads the same count for every instruction.
        _write(
            iopo_out, [{"id": it.id, "responses": a + extra.get(it.id, a)} for it, a in zip(items, answers)]
        )
        stats["iopo_x2_prompts"] = len(todo)
        stats["iopo_samples_per_instruction"] = 2 * width
    (out.with_suffix(".stats.json")).write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("instructions", type=Path)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("-n", "--num-samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=96, help="sequences per generate call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--writer-samples", type=int, default=0)
    parser.add_argument(
        "--iopo-out", type=Path, default=None, help="also answer IOPO's x2 prompts into this file"
    )
    parser.add_argument(
        "--backend", default="hf", choices=("hf", "vllm"), help="vllm: GPU, serves the HF folder"
    )
    args = parser.parse_args()
    stats = sample_file(
        args.instructions,
        args.model_dir,
        args.out,
        args.num_samples,
        args.max_new_tokens,
        args.temperature,
        args.batch_size,
        args.seed,
        args.writer_samples,
        args.iopo_out,
        backend=args.backend,
    )
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
