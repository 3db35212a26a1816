"""plan=true wiring, the no-CUDA stop, DeepSpeed config generation, experiments and gpu_check."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy

from ifpo.scale import gpu_check
from ifpo.scale.plan_cli import plan_or_train, plan_settings
from ifpo.training.strategy import GPUUnavailable, build_strategy, optimizer_class, require_cuda
from tests.hydra_helpers import ROOT, compose_config

EXPERIMENTS = sorted(
    p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml") if p.stem[:4] in ("dpo_", "rpo_", "iopo")
)


def test_plan_true_prints_the_table_and_trains_nothing(tmp_path, capsys):
    cfg = compose_config("train", ["experiment=rpo_70b", "plan=true"], output_dir=tmp_path)
    figures = plan_or_train(cfg)
    out = capsys.readouterr().out
    assert "llama-3.1-70b" in out and "ZeRO-3" in out and "smallest cluster: 1 node(s)" in out
    assert figures["plan/fits"] == 1.0 and 10 < figures["plan/total_gib"] < 80
    assert not (tmp_path / "checkpoints").exists()


def test_config_maps_onto_plan_settings():
    s = plan_settings(compose_config("train", ["experiment=rpo_70b"]))
    assert (s.nodes, s.gpus_per_node, s.zero_stage) == (1, 8, 3)
    assert (s.offload_optimizer, s.offload_params, s.reference, s.lora_rank) == ("cpu", "cpu", "adapter", 64)
    assert (s.micro_batch, s.seq_len, s.gradient_checkpointing, s.logprob_chunk_tokens) == (
        2,
        4096,
        True,
        1024,
    )
    s = plan_settings(
        compose_config("train", ["experiment=iopo_8b", "trainer.num_nodes=2", "model.logprob_chunk_size=256"])
    )
    assert (s.nodes, s.micro_batch, s.seq_len, s.reference, s.lora_rank, s.logprob_chunk_tokens) == (
        2,
        4,
        6000,
        "copy",
        0,
        256,
    )
    s = plan_settings(compose_config("train", []))  # the tiny CPU default: arch from its config.json
    assert (s.zero_stage, s.micro_batch) == (0, 16)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_scale_experiment_composes_and_plans(name):
    cfg = compose_config("train", [f"experiment={name}"])
    assert cfg.trainer.devices == 8 and cfg.trainer.max_epochs == 3 and cfg.loss.beta == 0.1
    assert plan_settings(cfg).zero_stage == 3


def test_paper_hyper_parameters():
    rpo = compose_config("train", ["experiment=rpo_8b"])
    assert (rpo.optim.lr, rpo.loss.gamma, rpo.data.max_length, rpo.optim.warmup_ratio) == (
        5e-4,
        0.05,
        4096,
        0.1,
    )
    assert (
        rpo.peft.enabled
        and rpo.peft.target_modules == "all-linear"
        and str(rpo.strategy.name) == "zero3_offload"
    )
    iopo = compose_config("train", ["experiment=iopo_qwen2_7b"])
    assert (iopo.optim.lr, iopo.data.max_length, iopo.model.arch) == (5e-6, 6000, "qwen2-7b")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_gpu_experiment_stops_at_once_without_cuda():
    cfg = compose_config("train", ["experiment=rpo_70b"])
    with pytest.raises(GPUUnavailable) as err:
        require_cuda(cfg)
    assert "torch.cuda.is_available() is False" in str(err.value) and "plan=true" in str(err.value)


def test_deepspeed_config_from_hydra_with_auto_sizes_and_overrides():
    cfg = compose_config(
        "train", ["experiment=rpo_8b_full", "strategy.deepspeed.zero_optimization.reduce_bucket_size=1e8"]
    )
    strategy = build_strategy(cfg)
    assert (
        isinstance(strategy, DeepSpeedStrategy) and strategy.exclude_frozen_parameters
    )  # no LoRA: reference left out
    zero = strategy.config["zero_optimization"]
    assert zero["stage"] == 3 and zero["reduce_bucket_size"] == 100_000_000
    assert (
        zero["stage3_prefetch_bucket_size"] == int(0.9 * 4096 * 4096)
        and zero["stage3_param_persistence_threshold"] == 40960
    )
    assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True and zero["overlap_comm"] is True
    assert "bf16" not in strategy.config  # filled by Lightning from trainer.precision=bf16-mixed
    seventy = build_strategy(compose_config("train", ["experiment=rpo_70b"]))
    assert seventy.config["zero_optimization"]["reduce_bucket_size"] == 8192 * 8192
    # LoRA on a pretrained base: checkpoints hold the adapters only (issue 12 item 7); a random-init
    # base has nowhere to be rebuilt from, so it stays.
    assert seventy.exclude_frozen_parameters
    random_base = build_strategy(compose_config("train", ["experiment=rpo_70b", "model.name_or_path=null",
                                                          "model.config=${paths.assets_dir}/tiny_llama"]))
    assert not random_base.exclude_frozen_parameters
    assert build_strategy(compose_config("train", [])) == "auto"


def test_offloaded_optimizer_uses_deepspeed_cpu_adam():
    pytest.importorskip("deepspeed")
    offload = build_strategy(compose_config("train", ["experiment=rpo_8b"]))
    plain = build_strategy(compose_config("train", ["strategy=zero3", "model.arch=llama-3.1-8b"]))
    assert optimizer_class(offload).__name__ == "DeepSpeedCPUAdam"
    assert optimizer_class(plain) is torch.optim.AdamW


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without CUDA")
def test_gpu_check_refuses_cleanly_without_cuda(capsys):
    assert gpu_check.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_gpu_check_model_is_about_one_billion_parameters():
    from transformers import AutoModelForCausalLM, LlamaConfig

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            LlamaConfig(**{k: v for k, v in gpu_check.ONE_B.items() if k != "architectures"})
        )
    assert gpu_check.params_of(gpu_check.ONE_B) == sum(p.numel() for p in model.parameters())
    assert 0.9e9 < gpu_check.params_of(gpu_check.ONE_B) < 1.5e9


@pytest.mark.gpu
def test_gpu_check_runs_on_a_gpu(tmp_path):
    out = tmp_path / "figures.json"
    assert gpu_check.main(["--steps", "6", "--warmup", "2", "--json", str(out)]) == 0
    import json

    figures = json.loads(out.read_text())
    assert figures["tokens_per_sec"] > 0 and figures["peak_memory_gib"] > 1
