"""`python train.py --help`: the config groups this entry point composes, not every folder of conf/.

Hydra's stock help lists every group under conf/ (build- and eval-only groups included) and every
ConfigStore entry (our `*_schema` validation nodes), then dumps the whole config. The help template
(conf/hydra/default.yaml) calls the `ifpo.help` resolver instead, which reads the entry config's
defaults list and its comments, so the text stays in step with the configs without a second copy.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

from omegaconf import OmegaConf

DEFAULT_LINE = re.compile(r"^\s+-\s+(?:override\s+)?([\w/]+):\s*(\S+)\s*(?:#\s*(.*))?$")
KEY_LINE = re.compile(r"^(\w+):\s*(.*?)\s*(?:#\s*(.*))?$")
HIDDEN_GROUPS = ("hydra", "paths")  # layout plumbing: documented in the README, not picked per run
WIDTH = 100


def _wrap(text: str, indent: int) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=" " * indent, subsequent_indent=" " * indent) or [""]


def _options(conf: Path, group: str) -> list[str]:
    """The group's yaml files; `_name` files are shared bases (e.g. _llama_8b), not choices."""
    return sorted(p.stem for p in (conf / group).glob("*.yaml") if not p.stem.startswith("_"))


def app_help(config_name: str) -> str:
    conf = Path(os.environ.get("IFPO_ROOT", ".")) / "conf"
    lines = (conf / f"{config_name}.yaml").read_text().splitlines()
    groups, keys, in_defaults = [], [], False
    for line in lines:
        if line.startswith("defaults:"):
            in_defaults = True
            continue
        if in_defaults and (m := DEFAULT_LINE.match(line)):
            if m.group(1) not in HIDDEN_GROUPS:
                groups.append((m.group(1), m.group(2), m.group(3) or ""))
            continue
        in_defaults = in_defaults and (line.startswith(" ") or not line.strip())
        if (m := KEY_LINE.match(line)) and m.group(1) != "defaults" and m.group(2):
            keys.append((m.group(1), m.group(2), m.group(3) or ""))
    header = [
        ln[1:].strip() for ln in lines[: next(i for i, ln in enumerate(lines) if not ln.startswith("#"))]
    ]
    # Groups added with a `+` (e.g. eval.py's `+eval=ifeval`) are named in the header comment.
    for group in dict.fromkeys(re.findall(r"\+(\w+)=", " ".join(header))):
        if (conf / group).is_dir() and group not in {g for g, _, _ in groups}:
            groups.insert(0, (group, "", f"required: +{group}=NAME"))
    out = [
        f"python {config_name}.py [group=option ...] [key=value ...]   (-m: sweep over a,b,c values)",
        *_wrap(" ".join(ln for ln in header if ln and not ln.startswith("python ")), 2),
        "",
        "Config groups (default in brackets; conf/<group>/<option>.yaml):",
    ]
    for group, default, note in groups:
        opts = [f"[{o}]" if o == default else o for o in _options(conf, group)]
        out.append(f"  {group:15s} {note}"[:WIDTH])
        out += _wrap(", ".join(opts) or "(none)", 20)
    out += ["", "Top-level keys:"]
    for key, value, note in keys:
        value = "(interpolated)" if "$" in value else value
        out += _wrap(f"{key:17s} {value:24s} {note}".rstrip(), 2)
    out += [
        "",
        "Any field: group.key=value (e.g. loss.beta=0.2); add a new one with +key=value.",
        f"Show the composed config: python {config_name}.py [overrides] --cfg job [--resolve]",
        f'Tab completion (bash): eval "$$(python {config_name}.py -sc install=bash)"',
        "Hydra's own flags and groups: --hydra-help",
    ]
    return "\n".join(out) + "\n"


def register() -> None:
    if not OmegaConf.has_resolver("ifpo.help"):
        OmegaConf.register_new_resolver("ifpo.help", app_help)
