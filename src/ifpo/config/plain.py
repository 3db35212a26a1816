"""One way from a config node to plain Python: resolved, enums as strings, nothing shared.

Models, heads, DeepSpeed and PEFT take plain dicts (they are saved in checkpoints, hashed into
cache keys, mutated while filling "auto" sizes); Hydra hands out DictConfigs. Every conversion
goes through :func:`to_plain`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any

from omegaconf import DictConfig, OmegaConf


def to_plain(node: Any) -> Any:
    """A resolved plain copy of `node`: DictConfig -> dict, ListConfig -> list (enums by name,
    which equals their value in ifpo's schemas), a mapping -> a deep-copied dict, None -> {}."""
    if node is None:
        return {}
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    if isinstance(node, Mapping):
        return copy.deepcopy(dict(node))
    return copy.deepcopy(node)


def plain_fields(obj: Any) -> dict[str, Any]:
    """A schema dataclass instance's fields, one level, enums as their values (strings).

    Unlike `to_plain(OmegaConf.structured(obj))` this does not re-validate enum fields, so a head
    can still name a bad value with its own message."""
    return {
        f.name: (value.value if isinstance(value := getattr(obj, f.name), Enum) else value)
        for f in dataclasses.fields(obj)
    }


def entry_config(cfg: DictConfig) -> DictConfig:
    """The composed config as the code reads it: every enum value replaced by its string, once.

    The schemas type fields as enums so Hydra lists the allowed values of a typo; past that check
    an enum is only a string that prints as `Dtype.bfloat16`. Each entry point (train.py, eval.py,
    build.py, and tests' compose_config) calls this on the config Hydra hands it, so no module
    below has to unwrap enums itself. Interpolations stay unresolved (they resolve when read, as
    before) and the struct flag is kept, so a misspelled key still fails.
    """
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
    OmegaConf.set_struct(out, bool(OmegaConf.is_struct(cfg)))
    return out
