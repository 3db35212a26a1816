"""The packed layout: one row, restarting/continuing positions, branch masks, predictor indices."""

import subprocess
import sys

import pytest
import torch

from ifpo.bench.report import steps_table
from ifpo.data.collate import PreferenceCollator
from ifpo.data.datamodule import make_collator
from ifpo.data.packed_collate import PackedPreferenceCollator
from ifpo.models.packing import branch_mask


def pair(prompt, chosen, rejected):
    return {"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected, "margin": 1.0}


def test_prefix_shared_pair_layout():
    batch = PackedPreferenceCollator(("chosen", "rejected"), prefix_sharing=True)(
        [pair([10, 11, 12], [20, 21], [30, 31, 32]), pair([40], [50], [60])]
    )
    assert batch.input_ids.tolist() == [[10, 11, 12, 20, 21, 30, 31, 32, 40, 50, 60]]
    # Both responses continue from the prompt's end; the next example restarts at 0.
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 3, 4, 5, 0, 1, 1]]
    assert batch.seg_branch[0].tolist() == [0, 0, 0, 1, 1, 2, 2, 2]  # [prompt, chosen, rejected]
    mask = branch_mask(batch.seg_branch)[0, 0]
    assert mask[5, :3].all() and not mask[5, 3:5].any()  # rejected sees the prompt, not chosen
    assert mask[3, :4].all() and not mask[3, 4:].any()  # chosen is causal over prompt + itself
    # Rejected's first token is predicted by the prompt's last token (row position 2).
    rows = batch.logp_sequence.tolist()
    first_rejected = rows.index(2)  # sequence ids are role-major: rejected of example 0 is 1 * B + 0
    assert batch.logp_index[first_rejected] == 2 and batch.logp_target[first_rejected] == 30
    assert batch.token_counts.tolist() == [2, 1, 3, 1]
    assert batch.attention_mask.sum() == 11  # no pads: tokens/s counts real tokens


def test_iopo_segments_share_each_prompt():
    quad = {"x1_ids": [1, 2], "x2_ids": [3, 4, 5], "y1_ids": [6], "y2_ids": [7, 8], "margin": 1.0}
    batch = PackedPreferenceCollator(("x1y1", "x2y2", "x1y2", "x2y1"), prefix_sharing=True)([quad])
    assert batch.input_ids.tolist() == [[1, 2, 6, 7, 8, 3, 4, 5, 7, 8, 6]]  # [x1, y1, y2] [x2, y2, y1]
    assert batch.seg_index.shape[0] == 2


def test_counts_match_padded_layout_and_switches_select_collator():
    examples = [pair([5, 6, 7], [8, 9], [10]), pair([11, 12], [13, 14, 15], [16, 17])]
    padded = PreferenceCollator(("chosen", "rejected"), pad_token_id=0)(examples)
    expected = (padded.labels[:, 1:] != -100).sum(-1)
    for sharing in (True, False):
        assert torch.equal(
            PackedPreferenceCollator(("chosen", "rejected"), sharing)(examples).token_counts, expected
        )
    roles = ("chosen", "rejected")
    assert isinstance(make_collator({"packing": False, "prefix_sharing": True}, roles, 0), PreferenceCollator)
    packed = make_collator({"packing": True, "prefix_sharing": False}, roles, 0)
    assert isinstance(packed, PackedPreferenceCollator) and not packed.prefix_sharing


def test_bench_table_ratios():
    rows = [
        {
            "name": "ifpo-dpo",
            "description": "",
            "kind": "pair",
            "examples_per_s": 3.0,
            "tokens_per_s": 900,
            "step_s": 1,
            "peak_rss_mb": 500,
        },
        {
            "name": "ifpo-iopo",
            "description": "",
            "kind": "quad",
            "examples_per_s": 1.2,
            "tokens_per_s": 700,
            "step_s": 1,
            "peak_rss_mb": 500,
        },
        {
            "name": "trl-dpo",
            "description": "",
            "kind": "pair",
            "examples_per_s": 1.0,
            "tokens_per_s": 300,
            "step_s": 1,
            "peak_rss_mb": 900,
        },
        {
            "name": "floor",
            "description": "",
            "kind": "pair",
            "examples_per_s": 2.0,
            "tokens_per_s": 600,
            "step_s": 1,
            "peak_rss_mb": 800,
        },
    ]
    table = steps_table(rows, batch=8, warmup=1, steps=1)
    assert "DPO / TRL                      3.00  (target >= 2.5: met)" in table
    assert "DPO / floor                    1.50  (target >= 1.3: met)" in table
    assert "IOPO / DPO                     0.40  (target >= 0.45: NOT met)" in table


def test_gpu_bench_refuses_cleanly_without_cuda():
    if torch.cuda.is_available():
        return
    proc = subprocess.run(
        [sys.executable, "-m", "ifpo.bench", "gpu"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2
    assert "needs a CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr


def test_gpu_bench_code_path_runs_tiny_on_cpu():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ifpo.bench",
            "gpu",
            "--cpu-smoke",
            "--batch",
            "2",
            "--length",
            "32",
            "--steps",
            "1",
            "--warmup",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # On the CPU only the kernels that train there (flex has no CPU backward): SDPA rows.
    rows = ["padded", "prefix+sdpa-dense", "packing+sdpa-dense", "floor"]
    assert [line.split()[0] for line in proc.stdout.splitlines()[2:]] == rows


def test_logprob_memory_workers_measure_in_fresh_processes():
    from ifpo.bench.__main__ import run_worker

    def run(method):
        return run_worker(
            [
                "logprob-worker",
                method,
                "--tokens",
                "2048",
                "--hidden",
                "64",
                "--vocab",
                "8192",
                "--chunk",
                "128",
            ],
            120,
        )

    chunked, naive = run("chunked"), run("naive")
    assert chunked["checksum"] == pytest.approx(naive["checksum"], rel=1e-5)
    assert naive["extra_bytes"] >= 2 * 2048 * 8192 * 4 * 0.9  # float32 logits + log_softmax output
    assert chunked["extra_bytes"] < naive["extra_bytes"] / 2
