"""Every documented command runs as typed, from a fresh copy of the repository root.

`doc_commands.collect` finds the commands (README fenced bash blocks, slurm/ and experiments/
READMEs, usage comments in conf/). Each one is first composed with Hydra, as `--cfg job` would,
and resolved; then, in the order the docs give them (a later command may read what an earlier one
wrote), it is run for real with the default config. The only change made to a command is to append
the budget overrides the README names for a short run (BUDGET below). Commands that need a GPU, a
cluster, an API key, a download or the user's own files stop after composition; the test prints
that list with each reason. `make X` runs the recipe `make -n X` prints (never `make test`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from ifpo.config.cli import normalize_overrides

sys.path.insert(0, str(Path(__file__).parent))
from doc_commands import DocCommand, collect

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
ENTRY_POINTS = {"train.py": "train", "eval.py": "eval", "build.py": "build"}

# What the README ("Short runs") shows as the way to make a run short; appended, so it wins only
# where the command itself does not set the same key.
BUDGET = {
    "train": ["debug=fast"],
    "train_optuna": ["debug=fast", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2"],
    "eval": ["eval.limit=3", "eval.generation.max_new_tokens=8"],
    "build": [],
}
# Genuinely long or self-referential commands: checked for composition (or `--help`) only.
LONG = {
    r"\bpytest\b|^make test": "the test suite itself",
    r"experiments\.mini_if\.run": "the study (13-21 min; its smoke run is tests/study/test_smoke.py)",
    r"experiments\.mini_if\.report": "reads the full study's run folders (outputs/mini_if)",
    r"experiments\.smol_ifeval\.run": "the real-model study (79 min; smoke: tests/study/test_smol_smoke.py)",
    r"experiments\.smol_ifeval\.measure": "a sizing measurement (minutes; figures in the study README)",
    r"ifpo\.bench": "a benchmark: minutes by design (tests/perf checks the kernels)",
    r"ifpo\.scale\.gpu_check": "needs a GPU",
}
CLUSTER = re.compile(r"^(sbatch|srun|scontrol|squeue)\b|\bsbatch\b|hydra/launcher=slurm")
PLACEHOLDER = re.compile(r"<[\w -]+>|\.\.\.|/path/to|\bPATH\b|\bIN OUT\b|/X/")
# Config fields naming inputs a command needs: missing ones mean the user's own files.
INPUT_FIELDS = (
    "data.train_files", "data.val_files", "model.name_or_path", "ckpt_path", "eval.data", "eval.checkpoint",
    "eval.responses", "builder.instructions", "sampler.checkpoint", "sampler.responses",
    "mini_if.built_dir", "mini_if.sft_model",
)


@dataclass
class Outcome:
    command: DocCommand
    mode: str  # ran | composed | listed
    reason: str = ""
    seconds: float = 0.0


def fresh_copy(dest: Path) -> Path:
    """Tracked files plus untracked, not-ignored ones (the working tree as a clone would have it)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def run_env(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IFPO_ROOT", "PROJECT_ROOT")}
    env.update({
        "PATH": f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(copy / "src"),  # the copy's package, not the editable install's
        "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "100",
    })
    return env


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The jobs of a basic sweep (`a=1,2 b=x,y`); other sweeps compose with their own config."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return BasicSweeper.split_arguments(parsed, max_batch_size=None)[0] if parsed else [[]]


COMPOSE_LOCK = threading.Lock()  # Hydra's global state and IFPO_ROOT: one composition at a time


def compose_job(copy: Path, config_name: str, overrides: list[str]) -> DictConfig:
    """Compose and resolve as the entry point would (schemas checked, interpolations resolved)."""
    with COMPOSE_LOCK:
        return _compose_job(copy, config_name, overrides)


def _compose_job(copy: Path, config_name: str, overrides: list[str]) -> DictConfig:
    os.environ["IFPO_ROOT"] = str(copy)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(copy / "conf"), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=normalize_overrides(overrides),
        return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(copy / "outputs/compose_check")
        cfg.hydra.runtime.cwd = str(copy)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    for key in ("hydra.run.dir", "hydra.sweep.dir", "hydra.launcher", "hydra.sweeper"):
        node = OmegaConf.select(cfg, key)
        if isinstance(node, DictConfig):
            OmegaConf.to_container(node, resolve=True)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.to_container(job, resolve=True, throw_on_missing=True)
    return cfg


def needs_from_config(copy: Path, cfg: DictConfig) -> str:
    """Why this composed job cannot run here ('' if it can)."""
    if cfg.get("plan"):
        return ""  # the memory planner runs anywhere
    if str(OmegaConf.select(cfg, "trainer.accelerator", default="cpu")) in ("gpu", "cuda"):
        return "needs a GPU"
    if (
        OmegaConf.select(cfg, "sampler.backend", default=None) == "vllm"
        or OmegaConf.select(cfg, "eval.generation.backend", default=None) == "vllm"
    ):
        return "needs a GPU (vLLM)"
    if OmegaConf.select(cfg, "judge", default=None):
        return "needs a judge server and its API key"
    for key in INPUT_FIELDS:
        if key == "model.name_or_path" and OmegaConf.select(cfg, "model.gguf_file", default=None):
            continue  # a model shipped in a wheel (model=smollm2_135m): the run converts it into this folder
        value = OmegaConf.select(cfg, key, default=None)
        for item in value if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value]:
            if item and not (copy / str(item)).exists():
                return f"needs the user's {key} ({item})"
    bench = OmegaConf.select(cfg, "eval.benchmark", default=None)
    if bench and bench != "synthetic" and not cfg.eval.data and not cfg.eval.responses:
        return f"downloads the {bench} benchmark from the hub"
    return ""


def make_recipe(copy: Path, argv: list[str], env: dict[str, str]) -> list[str]:
    """The lines `make` would run for this target, with this environment's interpreter."""
    # Under `make test` (CI) this is a sub-make: drop the parent's make variables, or it prints
    # "make[1]: Entering directory ..." lines among the recipe.
    # The parent's command-line variables (`make test ARGS=-x`) are exported as plain environment
    # variables too; the documented command must not inherit them.
    parent_vars = re.findall(r"(?:^|(?<=\s))([A-Za-z_]\w*)=", env.get("MAKEFLAGS", "").partition(" -- ")[2])
    dropped = {"MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", *parent_vars}
    clean = {k: v for k, v in env.items() if k not in dropped}
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", f"VENV={VENV}", "-o", f"{VENV}/.installed", *argv[1:]],
        cwd=copy,
        env=clean,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = [line for line in out.splitlines() if line.strip() and not line.startswith("#")]
    return [line for line in lines if "pip install" not in line and not line.startswith("test -n")]


class Runner:
    def __init__(self, copy: Path, done: set) -> None:
        self.copy, self.env, self.done = copy, run_env(copy), done
        self.outcomes: list[Outcome] = []

    def check(self, command: DocCommand) -> None:
        start = time.monotonic()
        mode, reason = self._check(command, command.text)
        self.outcomes.append(Outcome(command, mode, reason, time.monotonic() - start))

    def _words(self, text: str) -> list[str]:
        """The words bash passes to the program (so `SWEEP=$(ls -d ... | tail -1)` expands)."""
        if "$(" not in text:
            return shlex.split(text, comments=True)
        script = f"set -- {text.split(' # ')[0]}; printf '%s\\0' \"$@\""
        out = subprocess.run(
            ["bash", "-c", script], check=False, cwd=self.copy, env=self.env, capture_output=True, text=True
        )
        return [w for w in out.stdout.split("\0") if w]

    def _check(self, command: DocCommand, text: str) -> tuple[str, str]:
        head, pipe, _ = text.partition(" | ")
        if pipe and "$(" not in text:  # `python train.py ... plan=true | grep "host RAM"`: the whole pipeline
            return self._check_pipeline(head, text)
        if re.fullmatch(r"[A-Za-z_]\w*=\S+", text.split(" # ")[0].strip()):  # a shell assignment
            self._run(text, {})
            return "ran", ""
        for pattern, reason in LONG.items():
            if re.search(pattern, text):
                self._help_or_compose(text)
                return ("listed" if "suite" in reason else "composed"), reason
        argv = self._words(text)
        env_prefix = {}
        while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):
            key, value = argv.pop(0).split("=", 1)
            env_prefix[key] = value
        if argv and argv[0] == "make":
            for line in make_recipe(self.copy, argv, self.env):
                mode, reason = self._check(command, line.replace(f"{VENV}/bin/python", "python"))
                if mode != "ran":
                    return mode, reason
            return "ran", ""
        if CLUSTER.search(text):
            self._compose_cluster(argv)
            return "composed", "needs a SLURM cluster"
        entry = next((ENTRY_POINTS[w] for w in argv[1:2] if w in ENTRY_POINTS), None)
        if argv[:1] == ["python"] and entry:
            overrides = [a for a in argv[2:] if a not in ("-m", "--multirun")]
            jobs = expand_sweep(overrides) if ("-m" in argv or "--multirun" in argv) else [overrides]
            if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv[2:]):
                self._run(shlex.join(argv), env_prefix)  # --help, --cfg, --info: cheap, run as typed
                return "ran", ""
            reasons = {needs_from_config(self.copy, compose_job(self.copy, entry, job)) for job in jobs}
            reason = next((r for r in sorted(reasons) if r), "")
            if reason or PLACEHOLDER.search(text):
                return "composed", reason or "names a placeholder for the user's own value"
            budget = BUDGET["train_optuna" if "hparams_search=" in text else entry]
            self._run(shlex.join(argv + [b for b in budget if b not in argv]), env_prefix)
            return "ran", ""
        if PLACEHOLDER.search(text):
            self._help_or_compose(text)
            return "composed", "names a placeholder for the user's own value"
        self._run(text, env_prefix)
        return "ran", ""

    def _check_pipeline(self, head: str, text: str) -> tuple[str, str]:
        """Compose the first program if it is an entry point; then run the line as typed, every stage
        checked (pipefail: a failing producer or a grep that finds nothing fails the command)."""
        argv = self._words(head)
        entry = next((ENTRY_POINTS[w] for w in argv[1:2] if w in ENTRY_POINTS), None)
        if argv[:1] == ["python"] and entry:
            reason = needs_from_config(self.copy, compose_job(self.copy, entry, argv[2:]))
            if reason:
                return "composed", reason
        self._run(f"set -o pipefail; {text}", {})
        return "ran", ""

    def _compose_cluster(self, argv: list[str]) -> None:
        if "sbatch" in argv[0]:
            script = next(i for i, a in enumerate(argv) if a.endswith(".sbatch"))
            rest = [a for a in argv[script + 1 :] if not PLACEHOLDER.search(a)]
            if rest and (self.copy / rest[0]).is_file():  # sweep_array: one experiment per list line
                lines = [ln.split("#")[0].split() for ln in (self.copy / rest[0]).read_text().splitlines()]
                for line in filter(None, lines):
                    compose_job(self.copy, "train", line + rest[1:])
            else:
                compose_job(self.copy, "train", rest)
        else:
            entry = ENTRY_POINTS[argv[1]]
            for job in expand_sweep([a for a in argv[2:] if a not in ("-m", "--multirun")]):
                compose_job(self.copy, entry, job)

    def _help_or_compose(self, text: str) -> None:
        """A Hydra app composes with `--cfg job`; anything else must at least parse `--help`."""
        argv = shlex.split(text, comments=True)
        if argv[:1] == ["make"]:
            argv = shlex.split(make_recipe(self.copy, argv, self.env)[-1])
        if not argv or argv[0] not in ("python", str(VENV / "bin/python")) or "pytest" in argv:
            return
        module = argv[2] if argv[1] == "-m" else argv[1]
        source = self.copy / (module.replace(".", "/") + ".py" if argv[1] == "-m" else module)
        if not source.exists():
            source = self.copy / "src" / (module.replace(".", "/") + ".py")
        if not source.exists():
            source = source.with_suffix("") / "__main__.py"
        hydra_app = source.exists() and "hydra.main" in source.read_text()
        head = argv[:3] if argv[1] == "-m" else argv[:2]
        tail = [a for a in argv[len(head) :] if "=" in a and not a.startswith("-")] if hydra_app else []
        self._run(
            shlex.join(
                ["python", *head[1:], *tail, "--cfg", "job"] if hydra_app else ["python", *head[1:], "--help"]
            ),
            {},
        )

    def _run(self, text: str, env_prefix: dict[str, str]) -> None:
        key = (text, tuple(sorted(env_prefix.items())))
        if key in self.done:  # e.g. `make train` is `python train.py` + the same budget: run once
            return
        self.done.add(key)
        proc = subprocess.run(
            ["bash", "-c", text],
            check=False,
            cwd=self.copy,
            env={**self.env, **env_prefix},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, (
            f"`{text}` failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )


def test_collects_the_documented_commands():
    commands = collect(ROOT)
    sources = {c.source for c in commands}
    assert {"README.md", "slurm/README.md", "experiments/mini_if/README.md"} <= sources
    assert any(s.startswith("conf/") for s in sources), "config usage comments are collected"
    texts = [c.text for c in commands]
    assert "python train.py -m loss=dpo,rpo debug=fast" in texts  # the README's sweep, as typed


def test_a_new_documented_command_is_collected_without_editing_the_test(tmp_path):
    (tmp_path / "README.md").write_text(
        "text\n```bash\npython train.py loss=dpo \\\n    seed=3   # a note\n# a comment line\n```\n"
        "```text\nnot a command\n```\n    python indented.py (not fenced: prose)\n"
    )
    (tmp_path / "conf" / "group").mkdir(parents=True)
    (tmp_path / "conf" / "group" / "x.yaml").write_text(
        "# Usage: python train.py group=x \\\n#   key=1        (a note)\nkey: 1  # python not.a.command\n"
    )
    found = [(c.where, c.text) for c in collect(tmp_path)]
    assert found == [
        ("README.md:3", "python train.py loss=dpo seed=3"),
        ("conf/group/x.yaml:1", "python train.py group=x key=1"),
    ]


def test_make_recipe_ignores_the_parent_makes_command_line_variables():
    """`make test ARGS=--durations=30` exports ARGS; `make train` in the docs must still be plain."""
    env = {**os.environ, "MAKELEVEL": "1", "MAKEFLAGS": " -- ARGS=--durations=30", "ARGS": "--durations=30"}
    lines = make_recipe(ROOT, ["make", "train"], env)
    assert lines and lines[-1].strip().endswith("train.py")
    assert not any("--durations" in line for line in lines)


def check_group(commands: list[DocCommand], done: set) -> tuple[list[Outcome], list[str]]:
    """One documentation file's commands, in order, in a fresh copy of its own."""
    failures = []
    with tempfile.TemporaryDirectory(prefix="ifpo_docs_") as tmp:
        runner = Runner(fresh_copy(Path(tmp)), done)
        for command in commands:
            try:
                runner.check(command)
            except Exception as exc:  # noqa: BLE001  (collect every failing command, then report all)
                failures.append(f"{command.where}: {command.text}\n  -> {type(exc).__name__}: {exc}")
    return runner.outcomes, failures


@pytest.mark.timeout(1800)  # ~3.5 CPU-minutes; on a crowded 2-core machine the wall time stretches
def test_every_documented_command_runs_as_typed(capsys):
    groups: dict[str, list[DocCommand]] = {}
    for command in collect(ROOT):
        groups.setdefault(command.source, []).append(command)
    old_root, done = os.environ.get("IFPO_ROOT"), set()
    start = time.monotonic()
    try:
        # Two files at a time: the runs are single-threaded (OMP_NUM_THREADS=1), the machine has two cores.
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda group: check_group(group, done), groups.values()))
    finally:
        GlobalHydra.instance().clear()
        if old_root is not None:
            os.environ["IFPO_ROOT"] = old_root
    outcomes = [o for group_outcomes, _ in results for o in group_outcomes]
    failures = [f for _, group_failures in results for f in group_failures]
    with capsys.disabled():
        print(f"\ndocumented commands ({time.monotonic() - start:.0f} s):")
        for o in outcomes:
            note = f" — {o.reason}" if o.reason else ""
            print(f"  {o.mode:8s} {o.seconds:5.1f}s  {o.command.where}: {o.command.text[:90]}{note}")
    assert not failures, "\n\n".join(failures)
    assert sum(o.mode == "ran" for o in outcomes) >= 10
    assert {o.mode for o in outcomes} == {"ran", "composed", "listed"}
