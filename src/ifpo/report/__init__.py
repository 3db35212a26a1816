"""Sweep reports: `python -m ifpo.report SWEEP_DIR` writes report.html + PNG plots comparing a sweep's
runs."""

from ifpo.report.build import build_report

__all__ = ["build_report"]
