"""The planner reads any Llama / Qwen2 / Mistral / Gemma-2 config.json (`--arch PATH`, model.config)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ifpo.models.architectures import FAMILIES, arch_from_path, get_arch
from ifpo.scale.planner import GIB, PlanSettings, main, plan

# Small but complete configs, each with the quirks of its family (GQA, explicit head_dim, biases,
# tied embeddings, Gemma-2's four norms per layer).
TINY_CONFIGS = {
    "llama": {"hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 300, "tie_word_embeddings": False},
    "mistral": {"hidden_size": 64, "intermediate_size": 224, "num_hidden_layers": 3, "num_attention_heads": 8,
                "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 320},
    "qwen2": {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 256, "tie_word_embeddings": True},
    "gemma2": {"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
               "num_key_value_heads": 1, "head_dim": 32, "vocab_size": 512},
}  # fmt: skip


def _write(folder, model_type: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, **TINY_CONFIGS[model_type]}))
    return str(folder)


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_counts_from_config_json_match_transformers(tmp_path, model_type):
    folder = _write(tmp_path / model_type, model_type)
    arch = arch_from_path(folder)
    assert arch.model_type == model_type and get_arch(folder + "/config.json") == arch
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    # transformers dedups tied parameters in .parameters(), as the planner's count does.
    assert sum(p.numel() for p in model.parameters()) == arch.total_params()
    linears = {n.rsplit(".", 1)[-1]: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    for name, (fan_in, fan_out) in arch.linear_shapes().items():
        assert (linears[name].in_features, linears[name].out_features) == (fan_in, fan_out), name


def test_unsupported_or_broken_configs_are_refused_with_the_file(tmp_path):
    (tmp_path / "moe").mkdir()
    (tmp_path / "moe" / "config.json").write_text(
        json.dumps({"model_type": "mixtral", **TINY_CONFIGS["llama"]})
    )
    with pytest.raises(ValueError, match="mixtral.*supported"):
        arch_from_path(tmp_path / "moe")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "llama",\n "hidden_size": }')
    with pytest.raises(ValueError, match=r"config.json: line 2"):
        arch_from_path(tmp_path / "bad")
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    with pytest.raises(ValueError, match="missing field 'num_attention_heads'"):
        arch_from_path(tmp_path / "short")


def test_cli_takes_a_config_path(tmp_path, capsys):
    folder = _write(tmp_path / "gemma", "gemma2")
    assert main(["--arch", folder, "--nodes", "1", "--gpus-per-node", "2", "--seq-len", "64"]) == 0
    out = capsys.readouterr().out
    expected = plan(arch_from_path(folder), PlanSettings(nodes=1, gpus_per_node=2, seq_len=64))
    assert f"{expected.total:.2f}" in out and "gemma" in out
    assert f"SLURM mem_gb={expected.slurm_mem_gb}" in out
    assert main(["--arch", str(tmp_path / "nowhere")]) == 2
    assert "unknown architecture" in capsys.readouterr().err


def test_lm_head_gradient_and_host_ram_terms_at_70b():
    arch = get_arch("llama-3.1-70b")
    full = plan(arch, PlanSettings(nodes=2, reference="copy"))
    # The chunked backward's fp32 vocab x hidden buffer: 128256 * 8192 * 4 B = 3.91 GiB per GPU.
    assert full.lm_head_gradient == pytest.approx(128256 * 8192 * 4 / GIB)
    lora = plan(arch, PlanSettings(nodes=2, lora_rank=16, reference="adapter"))
    assert lora.lm_head_gradient == 0  # all-linear LoRA leaves lm_head frozen
    # Rank 0 holds one full bf16 copy (about 141 GB) to load with from_pretrained and to export.
    assert (
        full.host_full_state_dict * GIB == 2 * arch.total_params() and 141e9 < 2 * arch.total_params() < 142e9
    )
    offload = plan(
        arch, PlanSettings(nodes=2, reference="copy", offload_optimizer="cpu", offload_params="cpu")
    )
    assert offload.host_per_node == pytest.approx(offload.cpu_per_node + full.host_full_state_dict + 8 * 4)
    assert offload.slurm_mem_gb * 1e9 >= offload.host_per_node * GIB > (offload.slurm_mem_gb - 1) * 1e9
