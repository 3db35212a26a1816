"""The sweep report: one self-contained HTML page from a real 2-seed sweep on the user's own files."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from ifpo.report.build import build_report
from ifpo.report.plots import draw_bars, draw_curve

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[2]
ANIMALS = ("zebra", "otter", "heron", "lynx")


def _pairs(path: Path, prompts: list[str]) -> Path:
    rows = [
        {"prompt": p, "chosen": f"A short answer about {p.split()[-1]}", "rejected": "no"} for p in prompts
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report_sweep")
    train = _pairs(tmp / "train.jsonl", [f"Write one line about topic {i}" for i in range(16)])
    val = _pairs(tmp / "val.jsonl", [f"Describe the {animal}" for animal in ANIMALS])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "IFPO_ROOT": str(ROOT),
    }
    overrides = [
        "loss=dpo",
        "seed=1,2",
        "data=files",
        f"data.train_files=[{train}]",
        f"data.val_files=[{val}]",
        "debug=fast",
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
        "data.batch_size=2",
        f"paths.log_dir={tmp}",
        f"paths.data_dir={tmp}/data",
    ]
    done = subprocess.run(
        [sys.executable, "train.py", "-m", *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sweep_dir,) = list((tmp / "train" / "multiruns").iterdir())
    return sweep_dir


def test_report_is_one_self_contained_page(sweep):
    data = build_report(sweep, samples=2, sample_tokens=8)
    page = Path(data["html"]).read_text()
    sources = re.findall(r"""src=["']([^"']+)""", page)
    assert len(sources) >= 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    for src in sources:  # each embedded image is a real PNG
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "href=" not in page and "<script" not in page
    # The final-metrics table: one column per group, the optimised metric first and highlighted.
    (label,) = data["groups"]
    assert f"<th>{label} (n=2)</th>" in page
    first_row = re.search(r"<tr class=\"main\"><td>([^<]+)</td>", page).group(1)
    assert first_row == data["main_metric"] == "val/rewards/accuracies"
    runs = [
        json.loads((sweep / j / "metrics.json").read_text())["metrics"]["val/rewards/accuracies"]
        for j in "01"
    ]
    assert data["final"][label]["val/rewards/accuracies"]["mean"] == pytest.approx(sum(runs) / 2)
    # Samples come from the user's own validation file (its first distinct prompts), not synthetic prompts.
    (samples,) = data["samples"].values()
    assert [s["prompt"] for s in samples] == ["user: Describe the zebra", "user: Describe the otter"]
    assert "Describe the zebra" in page and "val.jsonl" in page
    assert all(isinstance(s["response"], str) for s in samples)


def test_curve_bands_stay_in_range_and_steps_are_integers():
    stats = pd.DataFrame(
        {
            "group": ["a"] * 3,
            "metric": ["val/rewards/accuracies"] * 3,
            "step": [1, 2, 3],
            "mean": [0.1, 0.9, 0.95],
            "std": [0.3, 0.3, 0.3],
            "n": [2, 2, 2],
        }
    )
    fig, ax = plt.subplots()
    draw_curve(ax, stats, "val/rewards/accuracies", ["a"], {"a": "C0"})
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() >= 0.0 and band.max() <= 1.0  # 0.1 - 0.3 and 0.95 + 0.3 clipped
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def test_bar_charts_show_their_values():
    frame = pd.DataFrame(
        {
            "group": ["dpo", "rpo"],
            "kind": ["keywords", "keywords"],
            "mean": [0.25, 0.5],
            "std": [0.0, 0.1],
            "n": [1, 2],
        }
    )
    fig, ax = plt.subplots()
    draw_bars(ax, frame, "kind", (0.0, 1.0))
    assert sorted(t.get_text() for t in ax.texts) == ["0.25", "0.50"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["dpo", "rpo"]
    plt.close(fig)
