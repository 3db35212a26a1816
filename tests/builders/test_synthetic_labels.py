"""The synthetic generator's labels agree with the library's strict rule checkers."""

from __future__ import annotations

from ifpo.constraints import Constraint
from ifpo.data import synthetic


def _check(record: dict, response: str) -> bool:
    return bool(Constraint(record["kind"], record["kwargs"]).check(response))


def test_synthetic_labels_hold_under_rule_checker() -> None:
    tasks = synthetic.generate_tasks(120, "train", 3) + synthetic.generate_tasks(60, "heldout", 3)
    checked = 0
    for kind in ("rpo", "dpo"):
        for record in synthetic.build_records(kind, tasks, 3):
            meta = record["meta"]
            originals = meta.get("original_constraints", meta["constraints"])
            for side in ("chosen", "rejected"):
                text = record[side][0]["content"]
                for constraint, label in zip(originals, meta[f"{side}_satisfied"]):
                    assert _check(constraint, text) == label, (kind, constraint, label, text)
                    checked += 1
            if kind == "rpo":  # the chosen response meets every constraint of its rewritten instruction
                assert all(_check(c, record["chosen"][0]["content"]) for c in meta["constraints"])
    for record in synthetic.build_records("iopo", tasks, 3):
        x1, x2 = record["meta"]["constraints_x1"], record["meta"]["constraints_x2"]
        y1, y2 = record["y1"][0]["content"], record["y2"][0]["content"]
        assert all(_check(c, y1) for c in x1) and all(_check(c, y2) for c in x2)
        assert not all(_check(c, y1) for c in x2) and not all(_check(c, y2) for c in x1)
    assert checked > 1000


def test_synthetic_constraints_respect_ifevals_conflicts() -> None:
    from ifpo.constraints import conflicts

    for task in synthetic.generate_tasks(200, "train", 5):
        kinds = [s.kind for s in task.specs]
        assert not any(conflicts(a, b) for i, a in enumerate(kinds) for b in kinds[i + 1:])
