"""IFBench (Pyatkin et al., 2025): out-of-distribution verifiable constraints in the IFEval record format."""

from __future__ import annotations

from omegaconf import DictConfig

from ifpo.eval.benchmarks.base import GetGenerator, register_benchmark
from ifpo.eval.benchmarks.ifeval import rule_benchmark
from ifpo.eval.report import BenchmarkResult


@register_benchmark("ifbench")
def ifbench(ecfg: DictConfig, get_generator: GetGenerator) -> BenchmarkResult:
    return rule_benchmark(ecfg, get_generator, "ifbench")
