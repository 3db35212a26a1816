"""Builders end to end: IOPO invariants, resumability after a kill, trainer-readable records, stats."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ifpo.builders import build_x2, run_build
from ifpo.constraints import Constraint, conflicts
from ifpo.data import synthetic
from ifpo.data.records import validate_record
from ifpo.sampling import SyntheticWriterSampler


def _cfg(kind: str, out: Path, **extra) -> dict:
    cfg = {
        "name": kind,
        "source": "synthetic",
        "synthetic": {"num_tasks": 12, "split": "train", "seed": 1},
        "system_prompt": "You are a helpful assistant.",
        "num_samples": 4,
        "chunk_size": 3,
        "min_margin": 0,
        "output": str(out),
        "progress": False,
    }
    cfg.update(extra)
    return cfg


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check(c: dict, text: str) -> bool:
    return bool(Constraint(c["kind"], c["kwargs"]).check(text))


def test_build_x2_makes_y1_violate_x2_without_conflicts() -> None:
    rng = random.Random(0)
    pool = [s.constraint for t in synthetic.generate_tasks(30, "train", 2) for s in t.specs]
    ops_seen = set()
    for task in synthetic.generate_tasks(25, "train", 0):
        x1 = [s.constraint for s in task.specs]
        y1 = synthetic.write_response(task.topic, task.specs, [True] * len(x1), rng)
        built = build_x2(x1, y1, rng, {"add": 1, "delete": 1, "revise": 1}, pool)
        assert built is not None
        x2, ops = built
        ops_seen.update(ops)
        assert set(x2) != set(x1)
        assert not all(c.check(y1) for c in x2)
        assert not any(conflicts(a.kind, b.kind) for i, a in enumerate(x2) for b in x2[i + 1 :])
    assert ops_seen == {"add", "delete", "revise"}
    with pytest.raises(ValueError, match="add or revise"):
        build_x2(x1, y1, rng, {"delete": 1}, pool)


def test_iopo_quads_satisfy_their_invariants(tmp_path: Path) -> None:
    out = tmp_path / "iopo.jsonl"
    stats = run_build(_cfg("iopo", out, num_samples=6), SyntheticWriterSampler(0.8), seed=0)
    rows = _rows(out)
    assert len(rows) == stats.kept > 0
    assert stats.instructions == 12 and stats.kept + sum(stats.skipped.values()) == 12
    for row in rows:
        validate_record(row, "quad", str(out), 1)
        x1, x2 = row["meta"]["constraints_x1"], row["meta"]["constraints_x2"]
        y1, y2 = row["y1"][0]["content"], row["y2"][0]["content"]
        assert all(_check(c, y1) for c in x1) and all(_check(c, y2) for c in x2)
        assert not all(_check(c, y1) for c in x2) and not all(_check(c, y2) for c in x1)
        assert row["x1"][1:] == row["x2"][1:]  # same history; only the system prompt's constraints differ


def test_rpo_records_are_trainer_pairs_with_provenance(tmp_path: Path) -> None:
    out = tmp_path / "rpo.jsonl"
    stats = run_build(_cfg("rpo", out, min_margin=1), SyntheticWriterSampler(), seed=0)
    rows = _rows(out)
    assert len(rows) == stats.kept > 0
    for row in rows:
        validate_record(row, "pair", str(out), 1)
        meta = row["meta"]
        assert row["margin"] == meta["margin"] > 1
        assert row["margin"] == sum(
            a != b for a, b in zip(meta["chosen_judgement"], meta["rejected_judgement"])
        )
        assert all(_check(c, row["chosen"][0]["content"]) for c in meta["constraints"])
    summary = json.loads(Path(str(out) + ".stats.json").read_text())
    assert summary["kept"] == len(rows)
    assert sum(summary["margin_histogram"].values()) == len(rows)
    assert "margin_at_most_min_margin" in summary["skipped"]


class _Killed(RuntimeError):
    pass


class _DyingSampler:
    """Raises on the k-th sampling call, like a kill in the middle of a build."""

    def __init__(self, inner, die_at: int) -> None:
        self.inner, self.die_at, self.calls = inner, die_at, 0

    def sample(self, requests, n, seed):
        self.calls += 1
        if self.calls == self.die_at:
            raise _Killed("simulated kill")
        return self.inner.sample(requests, n, seed)


@pytest.mark.parametrize("kind", ["rpo", "iopo", "dpo"])
def test_resume_after_kill_gives_identical_output(tmp_path: Path, kind: str) -> None:
    clean = tmp_path / "clean.jsonl"
    run_build(_cfg(kind, clean), SyntheticWriterSampler(0.7), seed=0)
    resumed = tmp_path / "resumed.jsonl"
    with pytest.raises(_Killed):
        run_build(_cfg(kind, resumed), _DyingSampler(SyntheticWriterSampler(0.7), die_at=3), seed=0)
    ledger = Path(str(resumed) + ".progress.jsonl")
    done_before = len(ledger.read_text().splitlines()) - 1
    assert 0 < done_before < 12
    with resumed.open("a") as handle:  # a torn append from the kill: must be cut away
        handle.write('{"prompt": "half a rec')
    counting = _DyingSampler(SyntheticWriterSampler(0.7), die_at=-1)
    run_build(_cfg(kind, resumed), counting, seed=0)
    assert resumed.read_bytes() == clean.read_bytes()
    assert Path(str(resumed) + ".stats.json").read_text() == Path(
        str(clean) + ".stats.json"
    ).read_text().replace("clean.jsonl", "resumed.jsonl")
    calls_per_chunk = 2 if kind == "iopo" else 1
    assert counting.calls <= (4 - done_before // 3) * calls_per_chunk  # finished chunks were not resampled


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    out = tmp_path / "rpo.jsonl"
    run_build(_cfg("rpo", out), SyntheticWriterSampler(), seed=0)
    with pytest.raises(ValueError, match="different builder config"):
        run_build(_cfg("rpo", out, num_samples=3), SyntheticWriterSampler(), seed=0)
    run_build(_cfg("rpo", out, num_samples=3, overwrite=True), SyntheticWriterSampler(), seed=0)
