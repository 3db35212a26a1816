"""environment.yml (conda, clusters) and pyproject.toml (pip, CI) declare the same dependencies."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _spec(requirement: str) -> str:
    return requirement.strip().replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = {_name(r): _spec(r) for r in project["dependencies"] if _name(r) != "torch"}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_deps = {_name(r): _spec(r) for r in pip_section}
    assert conda_deps == pip_deps
    assert any(str(d).startswith("pytorch=") for d in env["dependencies"]), "conda env must provide torch"


def test_makefile_pins_a_torch_that_pyproject_admits():
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"TORCH_VERSION \?= ([\d.]+)", makefile).group(1)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(r for r in project["dependencies"] if _name(r) == "torch")
    minimum = re.search(r">=([\d.]+)", torch_req).group(1)
    assert tuple(map(int, pinned.split("."))) >= tuple(map(int, minimum.split(".")))
