"""`eval.limit` applies to the synthetic held-out benchmark too (it used to score all of them)."""

from __future__ import annotations

import random

from ifpo.data.synthetic import generate_tasks, write_response
from ifpo.eval.runner import evaluate
from tests.eval_harness.conftest import eval_config, write_jsonl


def test_synthetic_limit_scores_the_first_items_only(tmp_path):
    n, seed = 6, 3
    tasks = generate_tasks(n, "heldout", seed)
    rng = random.Random(0)
    texts = {t.uid: write_response(t.topic, t.specs, [True] * len(t.specs), rng) for t in tasks}
    path = write_jsonl(tmp_path / "r.jsonl", [{"key": k, "response": v} for k, v in texts.items()])
    overrides = ["+eval=synthetic", f"eval.num_examples={n}", f"eval.seed={seed}", f"eval.responses={path}",
                 "eval.chart=false"]
    limited = evaluate(eval_config(tmp_path / "a", [*overrides, "eval.limit=2"]))
    assert [e["key"] for e in limited.examples] == [t.uid for t in tasks[:2]]
    assert sum(r["count"] for r in limited.per_kind.values()) == sum(len(t.specs) for t in tasks[:2])
    full = evaluate(eval_config(tmp_path / "b", overrides))
    assert len(full.examples) == n
