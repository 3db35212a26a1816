"""The mini_if study end to end at smoke size (`study.smoke=true`), plus its pure helpers.

The smoke run goes through every stage's real command (train.py, build.py, eval.py as
subprocesses); the assertions check each stage's artifacts and the final results table.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.mini_if import report as study_report
from experiments.mini_if.tasks import write_tasks
from ifpo.constraints import Constraint, parse_ifeval_record

ROOT = Path(__file__).resolve().parents[2]
METHODS = ["dpo", "rpo", "rpo_g0", "iopo", "iopo_rev"]


def _driver(out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "experiments.mini_if.run",
        "study.smoke=true",
        f"study.out_dir={out}",
        f"hydra.run.dir={out}/driver",
        *extra,
    ]
    return subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("mini_if_smoke")
    proc = _driver(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_data_sft_and_samples_stages(smoke):
    out, _ = smoke
    instructions = _jsonl(out / "data/pref_instructions.jsonl")
    assert len(instructions) == 12
    assert (out / "sft/checkpoints/last.ckpt").is_file()
    assert json.loads((out / "sft_hf/config.json").read_text())["model_type"] == "llama"
    samples = _jsonl(out / "data/samples.jsonl")
    assert [s["id"] for s in samples] == [i["key"] for i in instructions]
    assert all(len(s["responses"]) == 2 + 4 for s in samples)  # smoke: 2 model answers + 4 writer answers
    iopo = _jsonl(out / "data/samples_iopo.jsonl")
    assert all(
        len(row["responses"]) == 12 and row["responses"][:6] == s["responses"]
        for row, s in zip(iopo, samples)
    )


def test_build_stage_yields_every_record_kind(smoke):
    out, _ = smoke
    for kind, fields in (("dpo", "chosen"), ("rpo", "margin"), ("iopo", "x2"), ("iopo_rev", "x2")):
        records = _jsonl(out / f"data/built/{kind}.jsonl")
        stats = json.loads((out / f"data/built/{kind}.jsonl.stats.json").read_text())
        assert records and stats["kept"] == len(records) and all(fields in r for r in records)


def test_reversed_iopo_quads_answer_x1_from_the_shared_samples(smoke):
    """builder.x2=reverse: y1 and y2 are both samples of x1 (samples.jsonl, what DPO/RPO read) and x2
    differs from x1 exactly at the reversed positions."""
    out, _ = smoke
    samples = {s["id"]: s["responses"] for s in _jsonl(out / "data/samples.jsonl")}
    records = _jsonl(out / "data/built/iopo_rev.jsonl")
    stats = json.loads((out / "data/built/iopo_rev.jsonl.stats.json").read_text())
    assert stats["instructions"] == len(samples)
    assert sum(stats["margin_histogram"].values()) == len(records)
    for record in records:
        meta = record["meta"]
        assert meta["x2"] == "reverse"
        answers = samples[meta["source"]]
        assert record["y1"][-1]["content"] in answers and record["y2"][-1]["content"] in answers
        changed = [
            k for k, (a, b) in enumerate(zip(meta["constraints_x1"], meta["constraints_x2"])) if a != b
        ]
        assert changed == meta["reversed_positions"] and changed


def test_every_method_trained_and_was_evaluated(smoke):
    out, _ = smoke
    summary = json.loads((out / "pref/sweep_summary.json").read_text())
    assert [job["status"] for job in summary["jobs"]] == ["done"] * len(METHODS)
    for job in sorted(p for p in (out / "pref").iterdir() if p.is_dir() and p.name.isdigit()):
        assert json.loads((job / "metrics.json").read_text())["metrics"]["global_step"] == 2
        assert (job / "checkpoints/last.ckpt").is_file()
    for name in ["sft", *(f"{m}_s1" for m in METHODS)]:
        metrics = json.loads((out / f"eval/{name}/summary.json").read_text())["metrics"]
        assert 0.0 <= metrics["prompt_strict"] <= metrics["instruction_strict"] <= 1.0


def test_report_has_a_row_per_method_and_the_rpo_check(smoke):
    out, _ = smoke
    results = json.loads((out / "results/results.json").read_text())
    assert list(results["rows"]) == ["sft", *METHODS]
    assert all(row["runs"] == 1 for row in results["rows"].values())
    check = results["data"]["rpo_check"]
    assert check["pairs"] > 0 and check["chosen_meets_all"] == check["pairs"]
    for kind in ("iopo", "iopo_rev"):  # every quad re-verified by rule: all four relations hold
        quads = results["data"]["quad_check"][kind]
        assert quads["quads"] > 0 and set(quads.values()) == {quads["quads"]}
    table = (out / "results/results.md").read_text()
    for label in ("SFT (start)", "DPO", "RPO", "RPO, gamma=0", "IOPO", "IOPO (x2 by reversal)"):
        assert f"| {label} | 1 |" in table
    rev = results["data"]["builds"]["iopo_rev"]
    skipped = ", ".join(f"{r}: {n}" for r, n in rev["skipped"].items()) or "none"
    assert f"| IOPO (x2 by reversal) | {rev['kept']} quads | {skipped} |" in table  # the yields row
    per_kind = results["rows"]["iopo_rev"]["per_kind_strict"]  # its column of the per-kind table
    assert per_kind and set(per_kind) == set(results["kinds"])
    assert "| kind | SFT (start) | DPO | RPO | RPO, gamma=0 | IOPO | IOPO (x2 by reversal) |" in table
    assert all((out / "results" / png).is_file() for png in results["plots"])
    assert set(json.loads((out / "stage_times.json").read_text())) >= {
        "1_tasks",
        "2_sft",
        "3_sample",
        "4_build",
        "5_train",
        "6_eval",
        "7_report",
    }


def test_rerun_skips_finished_stages(smoke):
    out, _ = smoke
    proc = _driver(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("1_tasks", "2_sft", "2_sft_export", "3_sample", "4_build", "5_train", "6_eval"):
        assert f"[mini_if] {stage}: outputs exist, skipped" in proc.stdout


# ------------------------------------------------------------------ helpers, no subprocess
def test_tasks_sft_answers_meet_every_constraint_and_splits_are_disjoint(tmp_path):
    stats = write_tasks(tmp_path, sft_tasks=12, pref_tasks=5, seed=3)
    sft = _jsonl(tmp_path / "sft.jsonl")
    pref = _jsonl(tmp_path / "pref_instructions.jsonl")
    assert stats["sft_tasks"] == len(sft) == 12 and len(pref) == 5
    assert not {r["meta"]["source"] for r in sft} & {r["key"] for r in pref}
    for record in sft:
        constraints = [Constraint(c["kind"], c["kwargs"]) for c in record["meta"]["constraints"]]
        chosen = record["chosen"][0]["content"]
        assert all(c.check(chosen) for c in constraints)
        assert record["rejected"][0]["content"] != chosen
    for record in pref:
        assert parse_ifeval_record(record).constraints  # IFEval format the builders read


def _pair(chosen: str, rejected: str, margin: int) -> dict:
    return {
        "prompt": "p",
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "margin": margin,
        "meta": {
            "constraints": [
                {"kind": "punctuation:no_comma", "kwargs": {}},
                {"kind": "change_case:english_lowercase", "kwargs": {}},
            ]
        },
    }


def test_rpo_check_counts_a_chosen_response_that_breaks_its_instruction(tmp_path):
    path = tmp_path / "rpo.jsonl"
    good = _pair("all lower case words here and nothing else at all", "Upper, and commas", 2)
    bad = _pair("has, a comma but is lower case text", "no comma BUT UPPER", 1)
    path.write_text("\n".join(json.dumps(r) for r in (good, bad)) + "\n")
    assert study_report.rpo_check(path) == {
        "pairs": 2,
        "chosen_meets_all": 1,
        "rejected_fails_exactly_margin": 2,
    }


def test_readme_block_is_replaced_and_a_missing_marker_is_named(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{study_report.BEGIN}\nold\n{study_report.END}\noutro\n")
    study_report.update_readme(readme, "new table\n")
    assert readme.read_text() == f"intro\n{study_report.BEGIN}\nnew table\n{study_report.END}\noutro\n"
    readme.write_text("no markers")
    with pytest.raises(SystemExit, match="README.md: no"):
        study_report.update_readme(readme, "x")


def _quad(x2: list[dict], y1: str, y2: str) -> dict:
    x1 = [
        {"kind": "punctuation:no_comma", "kwargs": {}},
        {"kind": "change_case:english_lowercase", "kwargs": {}},
    ]
    return {
        "x1": [{"role": "user", "content": "p"}],
        "x2": [{"role": "user", "content": "p2"}],
        "y1": [{"role": "assistant", "content": y1}],
        "y2": [{"role": "assistant", "content": y2}],
        "meta": {"constraints_x1": x1, "constraints_x2": x2},
    }


def test_quad_check_counts_each_broken_relation(tmp_path):
    capital = [
        {"kind": "punctuation:no_comma", "kwargs": {}},
        {"kind": "change_case:english_capital", "kwargs": {}},
    ]
    good = _quad(capital, "all lower case and no comma", "ALL CAPITALS AND NO COMMA")
    y1_meets_x2 = _quad([{"kind": "punctuation:no_comma", "kwargs": {}}], "lower case text", "UPPER TEXT")
    y2_meets_x1 = _quad(capital, "lower case words", "lower case too")
    path = tmp_path / "iopo.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (good, y1_meets_x2, y2_meets_x1)) + "\n")
    assert study_report.quad_check(path) == {
        "quads": 3,
        "y1_meets_x1": 3,
        "y2_meets_x2": 2,  # y2_meets_x1's y2 is lower case: fails english_capital
        "y1_fails_x2": 2,  # y1_meets_x2's x2 is only no_comma, which y1 meets
        "y2_fails_x1": 2,  # y2_meets_x1's y2 meets no_comma and lowercase
    }
