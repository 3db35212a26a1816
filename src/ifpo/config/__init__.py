"""Structured configs: importing this module registers the schemas in Hydra's ConfigStore."""

from ifpo.config.schema import register_configs

register_configs()
