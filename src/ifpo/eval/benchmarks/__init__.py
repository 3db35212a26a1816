"""Benchmark adapters behind a registry: ``+eval=NAME`` picks ``get_benchmark(NAME)``.

One module per benchmark; importing this package registers them all.
"""

from ifpo.eval.benchmarks import (  # noqa: F401  (registration side effects)
    cfbench,
    ifbench,
    ifeval,
    multi_if,
    synthetic,
    sysbench,
    trace,
)
from ifpo.eval.benchmarks.base import GetGenerator, get_benchmark, register_benchmark, registered_benchmarks

__all__ = ["GetGenerator", "get_benchmark", "register_benchmark", "registered_benchmarks"]
