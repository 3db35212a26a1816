"""Collect the shell commands the documentation tells a user to type.

Sources: fenced ```bash blocks of README.md, slurm/README.md and experiments/**/README.md, and the
usage comments of conf/**/*.yaml (comment lines whose text starts with `python ` or `make `, after
an optional `Usage:`). A new command in any of them is picked up without editing the tests.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DOC_GLOBS = ("README.md", "slurm/README.md", "experiments/README.md", "experiments/*/README.md")
CONFIG_GLOB = "conf/**/*.yaml"
FENCE = re.compile(r"^```(\w*)\s*$")
COMMENT_CMD = re.compile(r"^#\s*(?:Usage:\s*)?((?:python|make) .*)$")


@dataclass
class DocCommand:
    """One command as written, and where (file:line) the docs write it."""

    text: str
    source: str
    line: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def argv(self) -> list[str]:
        """The words bash would pass (comments dropped, VAR=value prefixes moved to env)."""
        words = shlex.split(self.text, comments=True)
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            key, value = words.pop(0).split("=", 1)
            self.env[key] = value
        return words


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, text in lines:
        if pending is not None:
            number, text = pending[0], pending[1] + " " + text.strip()
            pending = None
        if text.rstrip().endswith("\\"):
            pending = (number, text.rstrip()[:-1].rstrip())
            continue
        out.append((number, text))
    if pending is not None:
        out.append(pending)
    return out


def _strip_trailing_note(text: str) -> str:
    """Usage comments end with a prose note: `(CPU smoke run)` or `# memory plan`."""
    text = re.sub(r"\s+#\s.*$", "", text)
    return re.sub(r"\s{2,}\(.*\)\s*$", "", text).strip()


def markdown_commands(path: Path, root: Path) -> list[DocCommand]:
    commands, block, lang = [], None, ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = FENCE.match(line.strip())
        if fence and block is None:
            block, lang = [], fence.group(1)
        elif line.strip() == "```" and block is not None:
            if lang in ("bash", "sh", "shell", "console"):
                for n, text in _join_continuations(block):
                    stripped = text.strip()
                    if stripped and not stripped.startswith("#"):
                        commands.append(
                            DocCommand(re.sub(r"\s+#\s.*$", "", stripped), str(path.relative_to(root)), n)
                        )
            block = None
        elif block is not None:
            block.append((number, line))
    return commands


def config_commands(path: Path, root: Path) -> list[DocCommand]:
    comment_lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("#"):
            comment_lines.append((number, re.sub(r"^\s*#\s?", "", line).rstrip()))
    commands = []
    # A continued usage comment goes on in the next comment line.
    for number, text in _join_continuations(comment_lines):
        match = COMMENT_CMD.match("# " + text.strip())
        if match:
            commands.append(
                DocCommand(_strip_trailing_note(match.group(1)), str(path.relative_to(root)), number)
            )
    return commands


def collect(root: Path) -> list[DocCommand]:
    commands: list[DocCommand] = []
    seen: set[Path] = set()
    for pattern in DOC_GLOBS:
        for path in sorted(root.glob(pattern)):
            if path not in seen:
                seen.add(path)
                commands += markdown_commands(path, root)
    for path in sorted(root.glob(CONFIG_GLOB)):
        commands += config_commands(path, root)
    return commands
