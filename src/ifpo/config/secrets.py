"""Refuse secrets typed on the command line, before Hydra saves them in the run folder.

Hydra writes every override to `<run>/.hydra/{config,overrides}.yaml` (and the config tree to
the loggers) before any of our code runs, so `+judge.api_key=sk-...` would end up in files that
get copied, shared and uploaded. `RefuseSecretOverrides` is a Hydra callback (conf/hydra/default.yaml)
whose `on_run_start`/`on_multirun_start` run before that; it stops the run with a message naming
the environment variable to use instead. Keys are matched by name (api_key, token, secret,
password, ...); `*_env` keys, which hold a variable's *name*, are allowed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SECRET_NAME = re.compile(
    r"^(?:.*_)?(?:api_?key|secret|password|passwd)$|^(?:token|access_token|auth_token|api_token|hf_token|bearer_token)$",
    re.IGNORECASE,
)


class SecretOnCommandLineError(ValueError):
    """A secret value was passed as a config override."""


def _env_hint(key: str, cfg: DictConfig | None) -> str:
    lowered = key.lower()
    if "wandb" in lowered:
        return "WANDB_API_KEY (or run `wandb login`)"
    if "judge" in lowered:
        judge_key = key.lstrip("+~").rsplit(".", 1)[0] + ".api_key_env"
        name = OmegaConf.select(cfg, judge_key, default=None) if cfg is not None else None
        return f"{name or 'OPENAI_API_KEY'} (the variable named by {judge_key})"
    if "hf" in lowered or "hub" in lowered:
        return "HF_TOKEN"
    return "an environment variable read by the component that needs it"


def secret_overrides(overrides: Iterable[str]) -> list[str]:
    """The override keys (as typed, without the value) that look like secrets."""
    found = []
    for override in overrides:
        key = override.split("=", 1)[0].strip()
        name = key.lstrip("+~").rsplit(".", 1)[-1]
        if "=" in override and SECRET_NAME.match(name) and not name.endswith("_env"):
            found.append(key)
    return found


def refuse_secret_overrides(overrides: Iterable[str], cfg: DictConfig | None = None) -> None:
    """Raise SecretOnCommandLineError naming each secret-looking override and where the secret belongs."""
    keys = secret_overrides(overrides)
    if keys:
        hints = "; ".join(f"{key}: set {_env_hint(key, cfg)}" for key in keys)
        raise SecretOnCommandLineError(
            f"refusing a secret on the command line ({', '.join(keys)}): it would be saved in the run "
            f"folder's "
            f".hydra/ files and logs. Put it in the environment instead — {hints}."
        )


class RefuseSecretOverrides(Callback):
    """Hydra callback: stop before any file is written when an override carries a secret."""

    def _check(self, config: DictConfig) -> None:
        overrides = OmegaConf.select(config, "hydra.overrides.task", default=None) or []
        try:
            refuse_secret_overrides(list(overrides), config)
        except SecretOnCommandLineError as err:
            # Hydra turns a callback's Exception into a warning and carries on (saving the secret),
            # so the refusal is printed and the process ends here (SystemExit is not an Exception).
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)
