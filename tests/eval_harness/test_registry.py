"""The benchmark registry: every conf/eval/<name>.yaml has an adapter, and names are unique."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifpo.eval.benchmarks import get_benchmark, register_benchmark, registered_benchmarks

CONF = Path(__file__).resolve().parents[2] / "conf" / "eval"


def test_every_eval_config_has_a_registered_adapter():
    assert registered_benchmarks() == sorted(p.stem for p in CONF.glob("*.yaml"))
    assert get_benchmark("trace").__module__ == "ifpo.eval.benchmarks.trace"


def test_unknown_and_duplicate_names_are_refused():
    with pytest.raises(ValueError, match=r"unknown eval.benchmark 'nope'; expected one of \['cfbench'"):
        get_benchmark("nope")
    with pytest.raises(ValueError, match="already registered by ifpo.eval.benchmarks.ifeval"):
        register_benchmark("ifeval")(lambda ecfg, get_generator: None)
