"""The step benchmark's one table: throughput, memory, ratios to TRL and to the floor, targets."""

from __future__ import annotations

import os
import platform
from typing import Any

TARGETS = "targets: DPO >= 2.5x TRL; DPO (prefix sharing) >= 1.3x floor; IOPO >= 0.45x DPO; peak RSS <= TRL's"


def _machine(threads: Any = None) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    threads = threads or torch.get_num_threads()
    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} ({threads} threads per configuration)"


def steps_table(rows: list[dict[str, Any]], batch: int, warmup: int, steps: int) -> str:
    by_name = {r["name"]: r for r in rows}
    trl, floor = by_name.get("trl-dpo"), by_name.get("floor")
    header = (
        f"{'configuration':<22} {'ex/s':>7} {'tok/s':>8} {'s/step':>7} {'peak MB':>8} {'x TRL':>6} "
        f"{'x floor':>7}  what"
    )
    threads = "/".join(str(t) for t in sorted({r["threads"] for r in rows if r.get("threads")})) or None
    lines = [
        f"ifpo step benchmark: batch {batch} per step, {warmup} warm-up + {steps} timed steps, fp32, "
        f"{_machine(threads)}",
        "(ex/s: pairs/s, or quads/s for IOPO; tok/s: real prompt+response tokens of the workload, no pads)",
        header,
        "-" * len(header),
    ]
    for r in rows:
        x_trl = f"{r['examples_per_s'] / trl['examples_per_s']:.2f}" if trl else "-"
        x_floor = f"{r['examples_per_s'] / floor['examples_per_s']:.2f}" if floor else "-"
        lines.append(
            f"{r['name']:<22} {r['examples_per_s']:>7.2f} {r['tokens_per_s']:>8.0f} {r['step_s']:>7.3f} "
            f"{r['peak_rss_mb']:>8.0f} {x_trl:>6} {x_floor:>7}  {r['description']}"
        )
    lines.append(TARGETS)
    dpo, iopo = by_name.get("ifpo-dpo"), by_name.get("ifpo-iopo")
    checks = []
    if dpo and trl:
        checks.append(("DPO / TRL", dpo["examples_per_s"] / trl["examples_per_s"], 2.5))
        checks.append(("TRL peak RSS / DPO peak RSS", trl["peak_rss_mb"] / dpo["peak_rss_mb"], 1.0))
    if dpo and floor:
        checks.append(("DPO / floor", dpo["examples_per_s"] / floor["examples_per_s"], 1.3))
    if dpo and iopo:
        checks.append(("IOPO / DPO", iopo["examples_per_s"] / dpo["examples_per_s"], 0.45))
    for label, value, target in checks:
        lines.append(
            f"  {label:<28} {value:6.2f}  (target >= {target}: {'met' if value >= target else 'NOT met'})"
        )
    return "\n".join(lines)
