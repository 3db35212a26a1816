"""Run a builder over instructions: sample -> judge -> pairs/quads, chunk by chunk, resumable.

Chunks are fixed slices of the full instruction list and each chunk's sampling seed depends
only on (seed, first id of the chunk), so a resumed run regenerates exactly the answers the
killed run had and writes byte-identical output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ifpo.builders.dpo import dpo_choice
from ifpo.builders.iopo import X2_MODES, build_x2, reversal_quad
from ifpo.builders.items import SourceItem, load_instructions, render_prompt, sample_request, synthetic_items
from ifpo.builders.judging import ConstraintReverser, JudgeJob, ResponseJudge
from ifpo.builders.records import constraint_list, pair_record, quad_record
from ifpo.builders.resumable import ResumableJsonl
from ifpo.builders.rpo import rpo_pairs
from ifpo.builders.stats import BuildStats
from ifpo.config.plain import to_plain
from ifpo.io.atomic import atomic_write_json
from ifpo.sampling.base import Sampler, derive_seed

log = logging.getLogger(__name__)
KINDS = ("rpo", "dpo", "iopo")


class Builder:
    """Turns one chunk of items into (id, records, stats) per item."""

    def __init__(self, cfg: Mapping[str, Any], sampler: Sampler, judge: ResponseJudge,
                 reverser: ConstraintReverser, items: Sequence[SourceItem], seed: int) -> None:
        self.cfg, self.sampler, self.judge, self.reverser, self.seed = cfg, sampler, judge, reverser, seed
        self.kind = cfg["name"]
        self.style = cfg.get("prompt_style", "system")
        self.n = int(cfg.get("num_samples", 4))
        # IOPO's "add" draws from every checkable constraint seen in the data (in first-seen order).
        self.pool = list(dict.fromkeys(c for item in items for c in item.constraints if c.checkable))

    def _responses(
        self, items: Sequence[SourceItem], constraints: Sequence[Sequence[Any]], tag: str
    ) -> list[list[str]]:
        requests = [sample_request(it, cs, self.style) for it, cs in zip(items, constraints)]
        return self.sampler.sample(requests, self.n, derive_seed(self.seed, tag, items[0].id))

    def _vectors(self, items, constraints, responses) -> list[list[tuple[bool, ...]]]:
        jobs, sizes = [], []
        for item, cs, answers in zip(items, constraints, responses):
            prompt = render_prompt(item, cs, self.style)
            jobs.extend(JudgeJob(prompt, tuple(cs), a) for a in answers)
            sizes.append(len(answers))
        flat, out, start = self.judge.vectors(jobs), [], 0
        for size in sizes:
            out.append(flat[start : start + size])
            start += size
        return out

    def run_chunk(self, items: Sequence[SourceItem]) -> list[tuple[str, list[dict], BuildStats]]:
        x1 = [list(it.constraints) for it in items]
        responses = [[a for a in answers] for answers in self._responses(items, x1, "x1")]
        stats = [BuildStats(instructions=1) for _ in items]
        for s, answers in zip(stats, responses):
            s.skip("empty_response", sum(not a.strip() for a in answers))
        responses = [[a for a in answers if a.strip()] for answers in responses]
        vectors = self._vectors(items, x1, responses)
        if self.kind == "iopo":
            return self._iopo(items, responses, vectors, stats)
        out = []
        for item, answers, vecs, s in zip(items, responses, vectors, stats):
            records = (
                self._rpo(item, answers, vecs, s) if self.kind == "rpo" else self._dpo(item, answers, vecs, s)
            )
            out.append((item.id, records, s))
        return out

    def _meta(self, item: SourceItem, **extra: Any) -> dict[str, Any]:
        return {"source": item.id, "builder": self.kind, **extra}

    def _rpo(self, item, answers, vecs, s) -> list[dict]:
        min_margin = int(self.cfg.get("min_margin", 2))
        records = []
        pairs = rpo_pairs(item.constraints, vecs, self.reverser, min_margin, s, answers)
        for p in pairs:
            s.keep(p.margin)
            meta = self._meta(
                item,
                original_constraints=constraint_list(item.constraints),
                constraints=constraint_list(p.constraints),
                chosen_judgement=list(vecs[p.chosen]),
                rejected_judgement=list(vecs[p.rejected]),
                margin=p.margin,
            )
            records.append(
                pair_record(
                    render_prompt(item, p.constraints, self.style),
                    answers[p.chosen],
                    answers[p.rejected],
                    meta,
                    margin=p.margin,
                )
            )
        return records

    def _dpo(self, item, answers, vecs, s) -> list[dict]:
        choice = dpo_choice(vecs, s)
        if choice is None:
            return []
        best, worst = choice
        margin = sum(vecs[best]) - sum(vecs[worst])
        s.keep(margin)
        meta = self._meta(
            item,
            constraints=constraint_list(item.constraints),
            chosen_judgement=list(vecs[best]),
            rejected_judgement=list(vecs[worst]),
            margin=margin,
        )
        return [
            pair_record(
                render_prompt(item, item.constraints, self.style), answers[best], answers[worst], meta
            )
        ]

    def _iopo(self, items, responses, vectors, stats) -> list[tuple[str, list[dict], BuildStats]]:
        mode = self.cfg.get("x2", "edit")
        if mode not in X2_MODES:
            raise ValueError(f"builder.x2={mode!r}; allowed: {', '.join(X2_MODES)}")
        if mode == "reverse":
            return [
                (item.id, self._iopo_reversed(item, answers, vecs, s), s)
                for item, answers, vecs, s in zip(items, responses, vectors, stats)
            ]
        mix = dict(self.cfg.get("ops", {"add": 1, "delete": 1, "revise": 1}))
        plans: list[tuple[str, list, list[str]] | None] = []
        for item, answers, vecs, s in zip(items, responses, vectors, stats):
            y1 = next((a for a, v in zip(answers, vecs) if all(v)), None)
            if y1 is None:
                s.skip("no_response_meets_x1")
                plans.append(None)
                continue
            rng = random.Random(derive_seed(self.seed, "x2", item.id))
            built = build_x2(
                item.constraints,
                y1,
                rng,
                mix,
                self.pool,
                int(self.cfg.get("max_ops", 2)),
                prompt=item.last_user,
            )
            if built is None:
                s.skip("no_x2_that_y1_violates")
                plans.append(None)
                continue
            plans.append((y1, *built))
        todo = [i for i, plan in enumerate(plans) if plan is not None]
        out: list[tuple[str, list[dict], BuildStats]] = [(it.id, [], s) for it, s in zip(items, stats)]
        if not todo:
            return out
        sub_items = [items[i] for i in todo]
        x2s = [plans[i][1] for i in todo]  # type: ignore[index]
        answers2 = self._responses(sub_items, x2s, "x2")
        answers2 = [[a for a in answers if a.strip()] for answers in answers2]
        vec2 = self._vectors(sub_items, x2s, answers2)
        # Judge the x2 candidates on x1 too: y2 must violate x1.
        vec21 = self._vectors(sub_items, [list(it.constraints) for it in sub_items], answers2)
        for k, i in enumerate(todo):
            item, s = items[i], stats[i]
            y1, x2, ops = plans[i]  # type: ignore[misc]
            y2 = next(
                (a for a, v2, v1 in zip(answers2[k], vec2[k], vec21[k]) if all(v2) and not all(v1)), None
            )
            if y2 is None:
                s.skip("no_response_meets_x2_and_violates_x1")
                continue
            s.keep()
            meta = self._meta(
                item,
                constraints_x1=constraint_list(item.constraints),
                constraints_x2=constraint_list(x2),
                ops=ops,
            )
            out[i] = (
                item.id,
                [
                    quad_record(
                        render_prompt(item, item.constraints, self.style),
                        render_prompt(item, x2, self.style),
                        y1,
                        y2,
                        meta,
                    )
                ],
                s,
            )
        return out

    def _iopo_reversed(self, item, answers, vecs, s) -> list[dict]:
        quad = reversal_quad(
            item.constraints,
            vecs,
            answers,
            self.reverser,
            s,
            prompt=item.last_user,
            allow_approximate=bool(self.cfg.get("approximate_reverses", False)),
        )
        if quad is None:
            return []
        s.keep(len(quad.reversed_positions))
        meta = self._meta(
            item,
            x2="reverse",
            constraints_x1=constraint_list(item.constraints),
            constraints_x2=constraint_list(quad.x2),
            reversed_positions=list(quad.reversed_positions),
        )
        return [
            quad_record(
                render_prompt(item, item.constraints, self.style),
                render_prompt(item, quad.x2, self.style),
                answers[quad.y1],
                answers[quad.y2],
                meta,
            )
        ]


def load_items(cfg: Mapping[str, Any], seed: int) -> tuple[list[SourceItem], BuildStats]:
    """Items of ``builder.source`` (instructions JSONL or synthetic), with input skips counted."""
    stats = BuildStats()
    system = cfg.get("system_prompt")
    if cfg.get("source", "instructions") == "synthetic":
        syn = cfg.get("synthetic", {})
        items = synthetic_items(
            int(syn.get("num_tasks", 20)), syn.get("split", "train"), int(syn.get("seed", seed)), system
        )
    elif cfg.get("source") == "instructions":
        if not cfg.get("instructions"):
            raise ValueError(
                "builder.source=instructions needs builder.instructions=PATH (IFEval-format JSONL)"
            )
        items, skipped = load_instructions(cfg["instructions"], cfg.get("on_error", "raise"), system)
        stats.skipped.update(skipped)
    else:
        raise ValueError(f"builder.source={cfg.get('source')!r}; allowed: instructions, synthetic")
    if cfg.get("limit"):
        items = items[: int(cfg["limit"])]
    return items, stats


def fingerprint(cfg: Mapping[str, Any], sampler_cfg: Mapping[str, Any], seed: int) -> str:
    """What must match for a rerun to continue a build (knobs that do not change records excluded)."""
    volatile = {"overwrite", "progress", "chunk_size_hint"}
    payload = {
        "builder": {k: v for k, v in cfg.items() if k not in volatile},
        "sampler": dict(sampler_cfg),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_build(
    builder_cfg: Any, sampler: Sampler, judge_client: Any = None, seed: int = 0, sampler_cfg: Any = None
) -> BuildStats:
    """Build ``builder_cfg.output`` (resuming a previous run of the same config); returns the total stats."""
    cfg, scfg = to_plain(builder_cfg), to_plain(sampler_cfg)
    if cfg.get("name") not in KINDS:
        raise ValueError(f"builder.name={cfg.get('name')!r}; allowed: {', '.join(KINDS)}")
    items, input_stats = load_items(cfg, seed)
    out = ResumableJsonl(cfg["output"], fingerprint(cfg, scfg, seed), overwrite=bool(cfg.get("overwrite")))
    builder = Builder(
        cfg, sampler, ResponseJudge(judge_client), ConstraintReverser(judge_client), items, seed
    )
    chunk = max(1, int(cfg.get("chunk_size", 8)))
    bar = tqdm(
        total=len(items),
        initial=sum(it.id in out.done for it in items),
        desc=f"build {cfg['name']}",
        disable=not cfg.get("progress", True),
    )
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        if all(it.id in out.done for it in part):
            continue
        for item_id, records, stats in builder.run_chunk(part):
            if item_id not in out.done:
                out.commit(item_id, records, stats)
                bar.update(1)
    bar.close()
    total = out.total_stats()
    total.add(input_stats)
    stats_path = Path(cfg.get("stats") or str(cfg["output"]) + ".stats.json")
    atomic_write_json(stats_path, {"builder": cfg["name"], "output": str(cfg["output"]), **total.to_dict()})
    print(total.table(f"{cfg['name']} build -> {cfg['output']}"))
    return total
