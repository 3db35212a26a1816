"""Each config has one home (issue 16): a default set in a second place fails here.

Loss defaults live in the schema dataclasses (ifpo.config.schema); conf/loss/*.yaml only select
the schema, and the heads' constructors take required keyword arguments.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml

from ifpo.config.schema import LOSS_SCHEMAS
from ifpo.losses import functional, get_loss_head
from ifpo.losses.base import _REGISTRY
from tests.hydra_helpers import ROOT, compose_config

LOSS_DIR = ROOT / "conf" / "loss"


def _schema_fields(name: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(LOSS_SCHEMAS[name])}


@pytest.mark.parametrize("name", sorted(LOSS_SCHEMAS))
def test_loss_yaml_sets_no_value_of_its_own(name):
    """conf/loss/<name>.yaml selects <name>_schema and sets nothing: the schema is the home."""
    node = yaml.safe_load((LOSS_DIR / f"{name}.yaml").read_text())
    assert node.pop("defaults") == [f"{name}_schema", "_self_"]
    assert node == {}, f"conf/loss/{name}.yaml sets {sorted(node)}: those defaults belong in the schema"


def test_every_loss_yaml_has_a_schema():
    assert sorted(p.stem for p in LOSS_DIR.glob("*.yaml")) == sorted(LOSS_SCHEMAS)


@pytest.mark.parametrize("name", sorted(LOSS_SCHEMAS))
def test_composed_loss_equals_the_schema_defaults(name):
    fields = _schema_fields(name)
    composed = compose_config("train", [f"loss={name}"]).loss
    assert list(composed) == list(fields)
    for key, f in fields.items():
        assert composed[key] == f.default, key


@pytest.mark.parametrize("name", sorted(LOSS_SCHEMAS))
def test_heads_take_their_options_without_defaults(name):
    """Every schema option is a required keyword of the head (or of the head it extends)."""
    cls = _REGISTRY[name]
    assert cls.schema is LOSS_SCHEMAS[name]
    options = {k for k in _schema_fields(name) if k != "name"}
    seen: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        for param in inspect.signature(vars(klass)["__init__"]).parameters.values():
            if param.name in options:
                assert param.default is inspect.Parameter.empty, f"{klass.__name__}({param.name}=...)"
                seen.add(param.name)
    assert seen == options


def test_loss_formulas_default_nothing_the_schema_sets():
    option_names = {f for name in LOSS_SCHEMAS for f in _schema_fields(name)}
    for fn_name, fn in inspect.getmembers(functional, inspect.isfunction):
        for param in inspect.signature(fn).parameters.values():
            if param.name in option_names:
                assert param.default is inspect.Parameter.empty, f"{fn_name}({param.name}=...)"


@pytest.mark.parametrize("name", sorted(LOSS_SCHEMAS))
def test_get_loss_head_fills_in_the_schema_defaults(name):
    head = get_loss_head(name)
    for key, f in _schema_fields(name).items():
        if key != "name":
            expected = f.default.value if hasattr(f.default, "value") else f.default
            assert getattr(head, key) == expected and type(getattr(head, key)) is type(expected), key


def test_get_loss_head_refuses_unknown_options_by_name():
    with pytest.raises(ValueError, match="loss=dpo has no option loss.gamma; its options are"):
        get_loss_head("dpo", gamma=0.1)


JUDGE_HOME = {"/judge@judge": "openai"}
#: What a benchmark's judge may not set again: where the judge is and how hard to try reaching it.
JUDGE_FIELDS = {"base_url", "api_key_env", "item_deadline_s", "max_retries", "backoff_s", "max_backoff_s"}


def _configs_with_a_judge_block() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        node = yaml.safe_load(path.read_text()) or {}
        if isinstance(node, dict) and isinstance(node.get("judge"), dict):
            found.append((str(path.relative_to(ROOT)), node))
    return found


def test_judge_settings_have_one_home():
    """conf/judge/ holds the judge block; a config that needs one pulls it in through its defaults
    list and sets only what differs (never the endpoint, key variable or retry policy again)."""
    with_block = _configs_with_a_judge_block()
    assert {"conf/eval/trace.yaml", "conf/eval/cfbench.yaml", "conf/eval/sysbench.yaml"} <= {
        name for name, _ in with_block
    }
    for name, node in with_block:
        assert JUDGE_HOME in node.get("defaults", []), f"{name}: judge block without the conf/judge/ entry"
        repeated = set(node["judge"]) & JUDGE_FIELDS
        assert not repeated, f"{name} sets {sorted(repeated)} again: they live in conf/judge/openai.yaml"


@pytest.mark.parametrize("bench", ["trace", "cfbench", "sysbench"])
def test_judged_benchmarks_compose_the_home_with_their_own_settings(bench):
    home = compose_config("build", ["judge=openai"]).judge
    own = yaml.safe_load((ROOT / "conf" / "eval" / f"{bench}.yaml").read_text())["judge"]
    judge = compose_config("eval", [f"+eval={bench}"]).eval.judge
    assert list(judge) == list(home)
    assert {key: judge[key] for key in home} == {key: own.get(key, home[key]) for key in home}


# -- enums: unwrapped once, where the config enters -----------------------------------------
def test_entry_config_turns_enums_into_strings_and_keeps_the_rest():
    from omegaconf import OmegaConf

    from ifpo.config.plain import entry_config
    from ifpo.config.schema import Dtype, ModelConfig

    raw = compose_config("train", ["+experiment=tiny_dpo"])  # already through entry_config
    assert type(raw.model.dtype) is str and type(raw.data.on_error) is str and type(raw.ref.mode) is str
    assert OmegaConf.is_struct(raw)
    with pytest.raises(Exception, match="bta"):
        raw.loss.bta  # noqa: B018  (a misspelled key still fails)
    typed = OmegaConf.create({"model": OmegaConf.structured(ModelConfig), "out": "${model.dtype}-run"})
    assert isinstance(typed.model.dtype, Dtype)
    plain = entry_config(typed)
    assert plain.model.dtype == "float32" and type(plain.model.dtype) is str
    assert OmegaConf.to_container(plain)["out"] == "${model.dtype}-run"  # interpolations stay lazy
    assert plain.out == "float32-run"


def test_no_module_unwraps_enums_itself():
    """`getattr(x, "value", x)` scattered through the code is what entry_config replaces."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "src" / "ifpo").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if '"value", ' in line and "getattr(" in line
    ]
    assert offenders == []


# -- one way to build objects -----------------------------------------------------------------
def test_name_registries_match_their_config_groups():
    """Each part picked by name is built from one registry whose keys are the config's choices."""
    from ifpo.config.schema import StrategyName
    from ifpo.sampling.factory import SAMPLERS
    from ifpo.training.strategy import STRATEGIES

    assert sorted(STRATEGIES) == sorted(s.value for s in StrategyName)
    assert sorted(STRATEGIES) == sorted(p.stem for p in (ROOT / "conf" / "strategy").glob("*.yaml"))
    backends = {yaml.safe_load(p.read_text())["backend"] for p in (ROOT / "conf" / "sampler").glob("*.yaml")}
    assert sorted(SAMPLERS) == sorted(backends)


def test_unknown_names_are_refused_listing_the_registry():
    from omegaconf import OmegaConf

    from ifpo.sampling import build_sampler
    from ifpo.training.strategy import build_strategy

    with pytest.raises(ValueError, match="sampler.backend='gpt'; allowed: hf, vllm, file, synthetic"):
        build_sampler(OmegaConf.create({"backend": "gpt"}))
    with pytest.raises(ValueError, match="strategy.name='fsdp'; allowed: single, ddp, zero3, zero3_offload"):
        build_strategy(OmegaConf.create({"strategy": {"name": "fsdp"}}))


def test_objects_built_by_target_are_lightning_or_hydra_parts():
    """`_target_` is for objects whose config is their constructor call (trainer, callbacks,
    loggers, sweeper parts); the project's own heads/benchmarks/samplers never take one."""
    for group in ("loss", "eval", "sampler", "strategy", "builder"):
        for path in (ROOT / "conf" / group).glob("*.yaml"):
            assert "_target_" not in path.read_text(), path
