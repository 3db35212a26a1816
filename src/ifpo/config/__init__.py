"""Structured configs: importing this module registers the schemas in Hydra's ConfigStore
and the `ifpo.help` resolver of the entry points' --help."""

from ifpo.config import help as _help
from ifpo.config.schema import register_configs

register_configs()
_help.register()
