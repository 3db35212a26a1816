"""Weights & Biases never prompts: offline unless somebody is logged in.

One home for the check every entry point makes (train, eval, report): a key in WANDB_API_KEY or
a netrc entry for the W&B host (what `wandb login` writes) means online; otherwise WANDB_MODE is
set to offline, so an unattended job never blocks on a login prompt. An explicit WANDB_MODE wins.
"""

from __future__ import annotations

import netrc
import os
from urllib.parse import urlparse


def wandb_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"


def has_wandb_login() -> bool:
    """A key in the environment or a netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(wandb_host()) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def prepare_wandb_env() -> str:
    """Set WANDB_MODE=offline when nobody is logged in (an explicit WANDB_MODE is kept); returns the mode."""
    if not os.environ.get("WANDB_MODE") and not has_wandb_login():
        os.environ["WANDB_MODE"] = "offline"
    return os.environ.get("WANDB_MODE", "online")
