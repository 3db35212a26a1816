"""Benchmarks: `python -m ifpo.bench` (see __main__)."""
