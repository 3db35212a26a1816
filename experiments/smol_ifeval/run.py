"""The smol_ifeval study driver:
`python -m experiments.smol_ifeval.run [study.smoke=true] [study.force=true]`.

SmolLM2-135M-Instruct (the start policy and the frozen reference) -> K sampled answers per
synthetic IFEval-kind instruction -> rule-judged DPO / RPO / IOPO-by-reversal data -> LoRA runs
at an equal budget -> every model scored on the real IFEval prompts -> report with paired
bootstrap intervals. Each stage is the subprocess a user would type; the shared runner
(experiments/common/stages.py, also mini_if's) skips a stage whose outputs are fresh, so a
killed study resumes, and records each stage's wall and CPU seconds.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf

from experiments.common.stages import StageError, StageRunner, fresh, run_study, sweep_jobs

ROOT = Path(__file__).resolve().parents[2]
STUDY_DIR = Path(__file__).resolve().parent
PY = sys.executable
BUILT = ("dpo", "rpo", "iopo")


@dataclass
class Layout:
    """Where every stage writes (all under ``out``)."""

    out: Path

    def __post_init__(self) -> None:
        o = self.out
        self.data, self.logs, self.start_json = o / "data", o / "logs", o / "start_model.json"
        self.instructions, self.overlap = o / "data/instructions.jsonl", o / "data/overlap.json"
        self.ifeval_eval = o / "data/ifeval_eval.jsonl"
        self.samples, self.built = o / "data/samples.jsonl", o / "data/built"
        self.pref, self.models, self.eval = o / "pref", o / "models", o / "eval"


class Study:
    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.smoke = bool(cfg.study.smoke)
        self.size = cfg.smoke if self.smoke else cfg.full
        self.seeds = list(self.size.seeds)
        self.methods = list(cfg.study.methods)
        self.paths = Layout(Path(cfg.study.out_dir))
        self.runner = StageRunner(self.paths.out, self.paths.logs, "smol_ifeval", bool(cfg.study.force), ROOT)
        self.stage = self.runner.stage

    @property
    def quads_per_step(self) -> int:
        """A quad is 4 sequences, a pair 2: half as many quads keeps the sequences per step equal."""
        if self.size.pairs_per_step % 2:
            raise SystemExit(
                f"pairs_per_step={self.size.pairs_per_step}: must be even (IOPO takes half as many quads)"
            )
        return self.size.pairs_per_step // 2

    @property
    def start(self) -> Path:
        return Path(json.loads(self.paths.start_json.read_text())["folder"])

    # ------------------------------------------------------------------ stages
    def model(self) -> None:
        cmd = [PY, "-m", "experiments.smol_ifeval.model", str(self.paths.start_json), *self.cfg.study.model]
        self.stage("0_model", [cmd], [self.paths.start_json])

    def tasks(self) -> None:
        p, s = self.paths, self.size
        cmd = [
            PY,
            "-m",
            "experiments.smol_ifeval.tasks",
            "instructions",
            str(p.data),
            "--num",
            str(s.instructions),
            "--seed",
            str(self.cfg.study.data_seed),
            "--ifeval",
            str(self.cfg.study.ifeval),
            "--min-constraints",
            str(s.constraints[0]),
            "--max-constraints",
            str(s.constraints[1]),
        ]
        if s.ifeval_keys:
            cmd += ["--keys", str(ROOT / s.ifeval_keys)]
        keys = [ROOT / s.ifeval_keys] if s.ifeval_keys else []
        self.stage("1_tasks", [cmd], [p.instructions, p.overlap, p.ifeval_eval], keys)

    def sample(self) -> None:
        p, s = self.paths, self.size
        cmd = [
            PY,
            "-m",
            "experiments.mini_if.sample",
            str(p.instructions),
            str(self.start),
            str(p.samples),
            "-n",
            str(s.num_samples),
            "--max-new-tokens",
            str(s.sample_max_new_tokens),
            "--temperature",
            str(s.sample_temperature),
            "--batch-size",
            str(s.sample_batch_size),
            "--seed",
            str(self.cfg.study.data_seed),
            "--writer-samples",
            str(s.writer_samples),
            "--backend",
            str(self.cfg.study.sampler_backend),
        ]
        self.stage("2_sample", [cmd], [p.samples], [p.instructions, self.start / "config.json"])

    def build(self) -> None:
        p, s = self.paths, self.size
        common = [
            "builder.source=instructions",
            f"builder.instructions={p.instructions}",
            "sampler=file",
            f"sampler.responses={p.samples}",
            f"builder.num_samples={s.num_samples + s.writer_samples}",
            f"seed={self.cfg.study.data_seed}",
            f"paths.data_dir={p.data}",
            "builder.progress=false",
            "builder.overwrite=true",
            *self.cfg.study.build_overrides,
        ]
        # One build.py process for all three (start-up dominates at small sizes); each builder reads
        # only its own keys. IOPO by reversal: y1, y2 both answer x1, so the same samples serve.
        cmd = [
            PY,
            "build.py",
            "-m",
            "builder=dpo,rpo,iopo",
            f"++builder.min_margin={s.rpo_min_margin}",
            "++builder.x2=reverse",
            f"++builder.approximate_reverses={str(bool(self.cfg.study.iopo_approximate_reverses)).lower()}",
            *common,
            f"hydra.sweep.dir={p.logs / 'build'}",
        ]
        self.stage("3_build", [cmd], [p.built / f"{k}.jsonl.stats.json" for k in BUILT], [p.samples])
        # Fewer records than one step's batch would give no training batch at all (train.py would stop
        # without a checkpoint): name the build and its rejection counts here instead.
        need = {"dpo": s.pairs_per_step, "rpo": s.pairs_per_step, "iopo": self.quads_per_step}
        for kind in sorted({m.split("_")[0] for m in self.methods}):  # rpo_code trains on rpo.jsonl
            stats = json.loads((p.built / f"{kind}.jsonl.stats.json").read_text())
            if (stats.get("kept") or 0) < need[kind]:
                raise StageError(
                    f"{p.built / f'{kind}.jsonl'}: {stats.get('kept')} records, fewer than one step's "
                    f"{need[kind]} (skipped by reason: {stats.get('skipped')}); raise the study's "
                    "instructions / num_samples / sample_max_new_tokens"
                )

    def train(self) -> None:
        p, s = self.paths, self.size
        cmd = [
            PY,
            "train.py",
            "-m",
            "+experiment=" + ",".join(f"smol_{m}" for m in self.methods),
            f"seed={','.join(map(str, self.seeds))}",
            f"++smol.built_dir={p.built}",
            # The start model: stage 0's overrides; the group itself (model=smollm2_135m) is the experiment's.
            *(o for o in self.cfg.study.model if not o.startswith("model=")),
            f"trainer.max_steps={s.pref_steps}",
            f"data.max_length={s.max_length}",
            f"++smol.pairs_per_step={s.pairs_per_step}",
            f"++smol.quads_per_step={self.quads_per_step}",
            f"hydra.sweep.dir={p.pref}",
            "callbacks.progress_bar.refresh_rate=0",
            *self.cfg.study.train_overrides,
        ]
        inputs = [self.paths.start_json, *(p.built / f"{k}.jsonl.stats.json" for k in BUILT)]
        jobs = sweep_jobs(p.pref, "smol_")
        outputs = [p.pref / "multirun.yaml", *(j / "checkpoints/last.ckpt" for j in jobs.values())]
        same = self.runner.unchanged("4_train", [cmd])
        if (
            len(jobs) == len(self.methods) * len(self.seeds)
            and not self.runner.force
            and same
            and fresh(outputs, inputs)
        ):
            self.runner.say("4_train: outputs exist, skipped")
            return
        if self.runner.force or (
            p.pref.exists() and not (same and fresh([p.pref / "multirun.yaml"], inputs))
        ):
            shutil.rmtree(p.pref, ignore_errors=True)  # runs of older data: never resume from them
        # Job folders are numbered in sweep order, so a rerun of the same sweep (after a kill)
        # resumes each unfinished job from its last resume checkpoint (train.py resume=auto).
        self.stage("4_train", [cmd], [p.pref / "multirun.yaml"], force=True)

    def export(self) -> dict[str, Path]:
        """Merge each run's LoRA adapters into a plain HF folder; returns model name -> folder."""
        p = self.paths
        folders = {"start": self.start}
        pairs = []
        for name, job in sweep_jobs(p.pref, "smol_").items():
            ckpt, out = job / "checkpoints/last.ckpt", p.models / name
            folders[name] = out
            if self.runner.force or not fresh([out / "config.json"], [ckpt]):
                pairs.append(f"{ckpt}:{out}")
        if pairs:
            cmd = [PY, "-m", "experiments.smol_ifeval.export", str(self.start), *pairs]
            self.stage(
                "5_export", [cmd], [Path(x.rpartition(":")[2]) / "config.json" for x in pairs], force=True
            )
        else:
            self.runner.say("5_export: outputs exist, skipped")
        return folders

    def evaluate(self, folders: dict[str, Path]) -> None:
        p, s = self.paths, self.size
        settings = [  # the model group and its knobs; the folder to score is swept below
            *(o for o in self.cfg.study.model if not o.startswith("model.name_or_path=")),
            "+eval=ifeval",
            f"eval.data={p.ifeval_eval}",
            f"eval.generation.max_new_tokens={s.eval_max_new_tokens}",
            f"eval.generation.batch_size={s.eval_batch_size}",
            "eval.generation.show_progress=false",
            "eval.chart=false",
            *self.cfg.study.eval_overrides,
        ]
        stamp = "\n".join(settings) + "\n"  # a model is re-scored when these change (e.g. the token cap)

        def done(name: str) -> bool:
            folder = p.eval / name
            return (
                (folder / "eval_settings.txt").is_file()
                and (folder / "eval_settings.txt").read_text() == stamp
                and fresh([folder / "examples.jsonl"], [folders[name] / "config.json", p.ifeval_eval])
            )

        todo = [n for n in folders if self.runner.force or not done(n)]
        if not todo:
            self.runner.say("6_eval: outputs exist, skipped")
            return
        sweep = p.logs / "eval_sweep"
        shutil.rmtree(sweep, ignore_errors=True)
        cmd = [
            PY,
            "eval.py",
            "-m",
            "model.name_or_path=" + ",".join(str(folders[n]) for n in todo),
            *settings,
            f"hydra.sweep.dir={sweep}",
        ]
        self.stage("6_eval", [cmd], [sweep / "multirun.yaml"], force=True)
        by_folder = {str(f): n for n, f in folders.items()}
        # One folder per model: <out>/eval/<name>/{examples,summary}.json* (the sweep numbers its jobs).
        for overrides_file in sweep.glob("*/.hydra/overrides.yaml"):
            values = dict(o.split("=", 1) for o in yaml.safe_load(overrides_file.read_text()))
            target = p.eval / by_folder[values["model.name_or_path"]]
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(overrides_file.parent.parent), target)
            (target / "eval_settings.txt").write_text(stamp)

    def report(self, names: list[str]) -> None:
        p = self.paths
        results = self.cfg.study.results_dir or (p.out / "results" if self.smoke else STUDY_DIR / "results")
        update = self.cfg.study.update_readme
        update = (not self.smoke) if update is None else bool(update)
        cmd = [
            PY,
            "-m",
            "experiments.smol_ifeval.report",
            str(p.out),
            "--results-dir",
            str(results),
            "--models",
            ",".join(names),
            "--bootstrap",
            str(self.cfg.study.bootstrap),
            "--seed",
            str(self.cfg.study.data_seed),
        ]
        if update:
            cmd += ["--readme", str(STUDY_DIR / "README.md")]
        # The report is cheap and reads everything: always regenerated.
        self.stage("7_report", [cmd], [Path(results) / "results.json"], force=True)

    def run(self) -> None:
        start = time.perf_counter()
        self.paths.out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.cfg, self.paths.out / "study_config.yaml")
        for step in (self.model, self.tasks, self.sample, self.build, self.train):
            step()
        folders = self.export()
        self.evaluate(folders)
        self.report(list(folders))
        self.runner.say(f"study finished in {time.perf_counter() - start:.0f} s -> {self.paths.out}")


@hydra.main(version_base="1.3", config_path="conf", config_name="study")
def main(cfg: DictConfig) -> None:
    run_study(cfg, "smol_ifeval", Study)


if __name__ == "__main__":
    main()
