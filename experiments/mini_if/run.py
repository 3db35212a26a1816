"""The mini_if study driver: `python -m experiments.mini_if.run [study.smoke=true] [study.force=true]`.

Runs the stages in order, each as the subprocess a user would type (train.py, build.py and
eval.py, plus this folder's small modules for what those entry points do not do). A stage is
skipped when its outputs exist, so rerunning a killed study continues where it stopped; each
stage's command, log and wall time are recorded under ``<out_dir>/logs/`` and
``<out_dir>/stage_times.json`` (the report's timing table).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf

from experiments.common.stages import StageRunner, fresh, run_study, sweep_jobs

ROOT = Path(__file__).resolve().parents[2]
STUDY_DIR = Path(__file__).resolve().parent
PY = sys.executable
BUILT = ("dpo", "rpo", "iopo", "iopo_rev")  # data/built/<kind>.jsonl: one file per builder run


@dataclass
class Layout:
    """Where every stage writes (all under ``out``)."""

    out: Path

    def __post_init__(self) -> None:
        o = self.out
        self.data, self.logs = o / "data", o / "logs"
        self.sft_jsonl, self.instructions = o / "data/sft.jsonl", o / "data/pref_instructions.jsonl"
        self.sft_run, self.sft_hf = o / "sft", o / "sft_hf"
        self.samples, self.built = o / "data/samples.jsonl", o / "data/built"
        self.samples_iopo = o / "data/samples_iopo.jsonl"
        self.pref, self.models, self.eval = o / "pref", o / "models", o / "eval"

    @property
    def sft_ckpt(self) -> Path:
        return self.sft_run / "checkpoints/last.ckpt"


class Study:
    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.smoke = bool(cfg.study.smoke)
        self.size = cfg.smoke if self.smoke else cfg.full
        self.seeds = list(self.size.get("seeds", cfg.study.seeds))
        self.methods = list(cfg.study.methods)
        self.force = bool(cfg.study.force)
        self.paths = Layout(Path(cfg.study.out_dir))
        # Real scale swaps these in (README "At real scale"): a pretrained start, real instructions.
        self.start_model = Path(cfg.study.sft_model) if cfg.study.sft_model else self.paths.sft_hf
        self.instructions = (
            Path(cfg.study.instructions) if cfg.study.instructions else self.paths.instructions
        )
        # Stages are skipped when fresh, logged and timed by the shared runner (experiments/common).
        self.runner = StageRunner(self.paths.out, self.paths.logs, "mini_if", self.force, ROOT)
        self.stage = self.runner.stage

    fresh = staticmethod(fresh)

    # ------------------------------------------------------------------ stages
    def tasks(self) -> None:
        p, s = self.paths, self.size
        self.stage(
            "1_tasks",
            [
                [
                    PY,
                    "-m",
                    "experiments.mini_if.tasks",
                    str(p.data),
                    "--sft-tasks",
                    str(s.sft_tasks),
                    "--pref-tasks",
                    str(s.pref_tasks),
                    "--seed",
                    str(self.cfg.study.data_seed),
                ]
            ],
            [p.sft_jsonl, p.instructions],
        )

    def sft(self) -> None:
        p, s = self.paths, self.size
        if self.cfg.study.sft_model:
            print(f"[mini_if] 2_sft: study.sft_model={self.start_model} given, no SFT stage", flush=True)
            return
        train = [
            PY,
            "train.py",
            "+experiment=mini_if_sft",
            f"data.train_files=[{p.sft_jsonl}]",
            f"trainer.max_steps={s.sft_steps}",
            f"trainer.val_check_interval={max(1, s.sft_steps // 3)}",
            f"seed={self.cfg.study.data_seed}",
            f"hydra.run.dir={p.sft_run}",
        ]
        export = [PY, "-m", "experiments.mini_if.export", str(p.sft_ckpt), str(p.sft_hf)]
        self.stage("2_sft", [train], [p.sft_ckpt], [p.sft_jsonl])
        self.stage("2_sft_export", [export], [p.sft_hf / "config.json"], [p.sft_ckpt])

    def sample(self) -> None:
        p, s = self.paths, self.size
        self.stage(
            "3_sample",
            [
                [
                    PY,
                    "-m",
                    "experiments.mini_if.sample",
                    str(self.instructions),
                    str(self.start_model),
                    str(p.samples),
                    "-n",
                    str(s.num_samples),
                    "--max-new-tokens",
                    str(s.sample_max_new_tokens),
                    "--temperature",
                    str(s.sample_temperature),
                    "--seed",
                    str(self.cfg.study.data_seed),
                    "--writer-samples",
                    str(s.writer_samples),
                    "--iopo-out",
                    str(p.samples_iopo),
                    "--backend",
                    str(self.cfg.study.sampler_backend),
                ]
            ],
            [p.samples, p.samples_iopo],
            [self.start_model / "config.json", self.instructions],
        )

    def build(self) -> None:
        p, s = self.paths, self.size
        width = s.num_samples + s.writer_samples
        common = [
            "builder.source=instructions",
            f"builder.instructions={self.instructions}",
            "sampler=file",
            f"seed={self.cfg.study.data_seed}",
            f"paths.data_dir={p.data}",
            "builder.progress=false",
            "builder.overwrite=true",
        ]
        pairs = [
            PY,
            "build.py",
            "-m",
            "builder=dpo,rpo",
            f"sampler.responses={p.samples}",
            f"builder.num_samples={width}",
            f"++builder.min_margin={s.rpo_min_margin}",
            *common,
            *self.cfg.study.build_overrides,
            f"hydra.sweep.dir={p.logs / 'build_pairs'}",
        ]
        quads = [
            PY,
            "build.py",
            "builder=iopo",
            f"sampler.responses={p.samples_iopo}",
            f"builder.num_samples={2 * width}",
            *common,
            *self.cfg.study.build_overrides,
            f"hydra.run.dir={p.logs / 'build_iopo'}",
        ]
        # IOPO by reversal: y1, y2 both answer x1, so it reads the same samples as DPO and RPO.
        reversed_quads = [
            PY,
            "build.py",
            "builder=iopo",
            "builder.x2=reverse",
            f"builder.approximate_reverses={str(bool(self.cfg.study.iopo_approximate_reverses)).lower()}",
            f"builder.output={p.built / 'iopo_rev.jsonl'}",
            f"sampler.responses={p.samples}",
            f"builder.num_samples={width}",
            *common,
            *self.cfg.study.build_overrides,
            f"hydra.run.dir={p.logs / 'build_iopo_rev'}",
        ]
        self.stage(
            "4_build",
            [pairs, quads, reversed_quads],
            [p.built / f"{k}.jsonl.stats.json" for k in BUILT],
            [p.samples, p.samples_iopo],
        )

    def pref_jobs(self) -> dict[str, Path]:
        """``<method>_s<seed>`` -> job folder of the training multirun (from each job's overrides)."""
        return sweep_jobs(self.paths.pref, "mini_if_")

    def train(self) -> None:
        p, s = self.paths, self.size
        experiments = ",".join(f"mini_if_{m}" for m in self.methods)
        cmd = [
            PY,
            "train.py",
            "-m",
            f"+experiment={experiments}",
            f"seed={','.join(map(str, self.seeds))}",
            f"++mini_if.built_dir={p.built}",
            f"++mini_if.sft_model={self.start_model}",
            f"trainer.max_steps={s.pref_steps}",
            f"hydra.sweep.dir={p.pref}",
            "callbacks.progress_bar.refresh_rate=10",
            *self.cfg.study.train_overrides,
        ]
        inputs = [
            self.start_model / "config.json",
            *(p.built / f"{k}.jsonl.stats.json" for k in BUILT),
        ]
        outputs = [p.pref / "multirun.yaml", *(j / "metrics.json" for j in self.pref_jobs().values())]
        if (
            len(outputs) - 1 == len(self.methods) * len(self.seeds)
            and not self.force
            and self.fresh(outputs, inputs)
        ):
            print("[mini_if] 5_train: outputs exist, skipped", flush=True)
            return
        if self.force or (p.pref.exists() and not self.fresh([p.pref / "multirun.yaml"], inputs)):
            shutil.rmtree(p.pref, ignore_errors=True)  # runs of older data: never resume from them
        # Job folders are numbered in sweep order, so a rerun of the same sweep (after a kill)
        # resumes each unfinished job from its last.ckpt (train.py resume=auto).
        self.stage("5_train", [cmd], [p.pref / "multirun.yaml"], force=True)

    def evaluate(self) -> None:
        p, s = self.paths, self.size
        p.models.mkdir(parents=True, exist_ok=True)
        checkpoints = {k: j / "checkpoints/last.ckpt" for k, j in self.pref_jobs().items()}
        if not self.cfg.study.sft_model:
            checkpoints = {"sft": p.sft_ckpt, **checkpoints}
        todo = []
        for name, ckpt in checkpoints.items():
            link = p.models / f"{name}.ckpt"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(ckpt.resolve())
            if self.force or not self.fresh([p.eval / name / "summary.json"], [ckpt]):
                todo.append(name)
        benchmark = str(self.cfg.study.eval_benchmark)
        common = [
            f"+eval={benchmark}",
            f"eval.generation.max_new_tokens={s.eval_max_new_tokens}",
            "eval.generation.batch_size=16",
            "eval.generation.show_progress=false",
            *([f"eval.num_examples={s.eval_examples}"] if benchmark == "synthetic" else []),
            *self.cfg.study.eval_overrides,
        ]
        start = p.eval / "sft" / "summary.json"
        if self.cfg.study.sft_model and (self.force or not start.exists()):
            # A given start model is an HF folder, not a checkpoint: scored on its own.
            cmd = [
                PY,
                "eval.py",
                *common,
                f"model.name_or_path={self.start_model}",
                f"hydra.run.dir={p.eval / 'sft'}",
            ]
            self.stage("6_eval_start", [cmd], [start], force=True)
        if not todo:
            print("[mini_if] 6_eval: outputs exist, skipped", flush=True)
            return
        sweep = p.logs / "eval_sweep"
        shutil.rmtree(sweep, ignore_errors=True)
        cmd = [
            PY,
            "eval.py",
            "-m",
            f"model={self.cfg.study.eval_model}",
            "eval.checkpoint=" + ",".join(str(p.models / f"{n}.ckpt") for n in todo),
            *common,
            f"hydra.sweep.dir={sweep}",
        ]
        self.stage("6_eval", [cmd], [sweep / "multirun.yaml"], force=True)
        # One folder per model: <out>/eval/<name>/summary.json (the sweep numbers its jobs).
        for overrides_file in sweep.glob("*/.hydra/overrides.yaml"):
            values = dict(o.split("=", 1) for o in yaml.safe_load(overrides_file.read_text()))
            name = Path(values["eval.checkpoint"]).stem
            target = p.eval / name
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(overrides_file.parent.parent), target)

    def report(self) -> None:
        p = self.paths
        results = self.cfg.study.results_dir or (p.out / "results" if self.smoke else STUDY_DIR / "results")
        update = self.cfg.study.update_readme
        update = (not self.smoke) if update is None else bool(update)
        cmd = [
            PY,
            "-m",
            "experiments.mini_if.report",
            str(p.out),
            "--results-dir",
            str(results),
            "--seeds",
            ",".join(map(str, self.seeds)),
            "--methods",
            ",".join(["sft", *self.methods]),
        ]
        if update:
            cmd += ["--readme", str(STUDY_DIR / "README.md")]
        # The report is cheap and reads everything: always regenerated.
        self.stage("7_report", [cmd], [Path(results) / "results.json"], force=True)

    def run(self) -> None:
        start = time.perf_counter()
        OmegaConf.save(self.cfg, self.paths.out / "study_config.yaml")
        for step in (self.tasks, self.sft, self.sample, self.build, self.train, self.evaluate, self.report):
            step()
        print(
            f"[mini_if] study finished in {time.perf_counter() - start:.0f} s -> {self.paths.out}", flush=True
        )


@hydra.main(version_base="1.3", config_path="conf", config_name="study")
def main(cfg: DictConfig) -> None:
    run_study(cfg, "mini_if", Study)


if __name__ == "__main__":
    main()
