"""`python -m ifpo.report SWEEP_DIR [--out DIR] [--wandb-project P]`: local HTML report (+ W&B Report when
logged in)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ifpo.report.build import build_report
from ifpo.report.collect import ReportError
from ifpo.report.wandb_report import maybe_publish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ifpo.report",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "sweep_dir", type=Path, help="a multirun folder (outputs/<task>/multiruns/<time>) or one run"
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder; None = <sweep_dir>/report")
    parser.add_argument(
        "--wandb-project", default=None, help="when logged in to W&B: also publish a W&B Report here"
    )
    parser.add_argument(
        "--wandb-entity", default=None, help="W&B entity of --wandb-project; None = your default"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=3,
        help="validation prompts each group's last checkpoint answers in the report (0 = none)",
    )
    parser.add_argument("--sample-tokens", type=int, default=64, help="max new tokens per sample answer")
    args = parser.parse_args(argv)
    try:
        data = build_report(args.sweep_dir, args.out, samples=args.samples, sample_tokens=args.sample_tokens)
    except ReportError as error:
        print(f"ifpo.report: {error}", file=sys.stderr)
        return 2
    print(
        f"report: {data['html']} ({len(data['images'])} plots, {sum(map(len, data['groups'].values()))} runs)"
    )
    print(maybe_publish(args.sweep_dir, args.wandb_project, args.wandb_entity))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
