"""Memory planner: exact parameter counts, hand-computed byte budgets, DeepSpeed/PEFT cross-checks."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch

from ifpo.models.architectures import LLAMA_3_1_8B, LLAMA_3_1_70B, PRESETS, QWEN2_7B, ArchSpec, get_arch
from ifpo.scale.planner import (
    GIB,
    PlanSettings,
    main,
    plan,
    sequences_per_forward,
    smallest_cluster,
)

# Toy: hidden 16, 2 layers, 4 heads (head_dim 4), 2 KV heads, MLP 40, vocab 100, untied.
TOY = ArchSpec(name="toy", hidden=16, layers=2, heads=4, kv_heads=2, mlp=40, vocab=100)
# Per layer: q 16*16=256, k 16*8=128, v 128, o 16*16=256, MLP 3*16*40=1920, norms 2*16=32 -> 2720.
TOY_PER_LAYER = 256 + 128 + 128 + 256 + 1920 + 32
# embed 100*16 + 2 layers + final norm 16 + lm_head 100*16.
TOY_TOTAL = 1600 + 2 * TOY_PER_LAYER + 16 + 1600
# LoRA r=2 on every linear, r*(in+out): q 2*(16+16)=64, k 2*(16+8)=48, v 48, o 64,
# gate 2*(16+40)=112, up 112, down 2*(40+16)=112 -> 560 per layer, 2 layers.
TOY_LORA_R2 = 2 * (64 + 48 + 48 + 64 + 112 + 112 + 112)


def toy_settings(**overrides) -> PlanSettings:
    base = {
        "nodes": 1, "gpus_per_node": 4, "zero_stage": 3, "reference": "copy", "micro_batch": 2, "seq_len": 8,
        "gradient_checkpointing": True, "flash_attention": False, "logprob_chunk_tokens": 4,
        "overhead_gib": 0.0,
    }  # fmt: skip
    base.update(overrides)
    return PlanSettings(**base)


def test_toy_parameter_counts_by_hand():
    assert TOY_TOTAL == 8656
    assert TOY.params_per_layer() == TOY_PER_LAYER
    assert TOY.total_params() == TOY_TOTAL
    assert TOY.lora_params(rank=2) == TOY_LORA_R2 == 1120
    assert TOY.largest_module_params() == 100 * 16  # the embedding beats the 16x40 MLP linears


def test_llama_8b_count_by_hand():
    per_layer = 4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336 + 2 * 4096
    total = 2 * 128256 * 4096 + 32 * per_layer + 4096
    assert total == 8_030_261_248
    assert LLAMA_3_1_8B.total_params() == total


def _hf_config(arch: ArchSpec):
    from transformers import LlamaConfig, Qwen2Config

    cls = Qwen2Config if arch.qkv_bias else LlamaConfig
    return cls(
        hidden_size=arch.hidden, num_hidden_layers=arch.layers, num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads, intermediate_size=arch.mlp, vocab_size=arch.vocab,
        tie_word_embeddings=arch.tied_embeddings,
    )  # fmt: skip


def _meta_model(arch: ArchSpec):
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(_hf_config(arch))


@pytest.mark.parametrize("arch", [LLAMA_3_1_8B, LLAMA_3_1_70B, QWEN2_7B], ids=lambda a: a.name)
def test_param_count_matches_transformers_on_meta(arch):
    from deepspeed.runtime.zero.stage3 import model_to_params

    model = _meta_model(arch)
    assert sum(p.numel() for p in model.parameters()) == arch.total_params()
    # DeepSpeed's own largest-layer notion (its total dedups by data_ptr, which is 0 on meta).
    assert model_to_params(model)[1] == arch.largest_module_params()


def test_published_sizes():
    assert LLAMA_3_1_70B.total_params() == 70_553_706_496
    assert QWEN2_7B.total_params() == 7_615_616_512


def test_lora_count_matches_peft_all_linear():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_hf_config(TOY))
    assert sum(p.numel() for p in model.parameters()) == TOY_TOTAL
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trainable == TOY.lora_params(rank=2) == TOY_LORA_R2


def test_lora_subset_targets_match_peft_on_qwen2():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    tiny_qwen = replace(TOY, name="tiny-qwen", qkv_bias=True)
    model = AutoModelForCausalLM.from_config(_hf_config(tiny_qwen))
    # q/k/v biases: 16 + 8 + 8 per layer on top of the Llama count.
    assert sum(p.numel() for p in model.parameters()) == tiny_qwen.total_params() == TOY_TOTAL + 2 * 32
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    # per layer: q 4*(16+16)=128, v 4*(16+8)=96; 2 layers.
    assert trainable == 2 * (128 + 96) == tiny_qwen.lora_params(4, ("q_proj", "v_proj"))


def test_toy_plan_full_finetune_zero3_by_hand():
    p = plan(TOY, toy_settings())
    n = 4  # 1 node x 4 GPUs share the ZeRO-3 state
    params = 2 * TOY_TOTAL / n  # bf16
    grads = 2 * TOY_TOTAL / n  # bf16
    optim = 12 * TOY_TOTAL / n  # fp32 master + m + v
    gather = 4 * 1600  # bf16 weights + grads of the embedding, the largest module
    ref = 2 * TOY_TOTAL / n
    tokens = 2 * 8
    # One layer per token (h 16, kv 8, m 40, bf16): saved = norms 2*(4h + 2h) 192 + attention
    # 2*(3h + 2kv) 128 + MLP 4*2m 320 + no flash 5*heads*seq 160 = 800; transient = 3*2m 240 +
    # fp32 norm grad 4h 64 + residual grads 3*2h 96 = 400.
    saved, transient = 192 + 128 + 320 + 160, 240 + 64 + 96
    acts_ckpt = 2 * tokens * 2 * 16 + tokens * (saved + transient)  # layer inputs + one layer recomputed
    acts_full = tokens * (2 * saved + transient)
    logprobs = 4 * 100 * 4 * 2  # chunk_tokens * vocab * fp32 * (logits + log-softmax)
    lm_head_grad = 4 * 100 * 16  # fp32 vocab x hidden, full fine-tuning
    # Policy + reference copy (2 * 8656 params) stay gathered (< max_live), beyond the embedding.
    live = 2 * (2 * TOY_TOTAL - 1600)
    logprobs_naive = tokens * 100 * 4 * 2
    assert p.parameters * GIB == pytest.approx(params)
    assert p.gradients * GIB == pytest.approx(grads)
    assert p.optimizer_states * GIB == pytest.approx(optim)
    assert p.gather_buffer * GIB == pytest.approx(gather)
    assert p.reference_model * GIB == pytest.approx(ref)
    assert p.activations * GIB == pytest.approx(acts_ckpt) == 20224
    assert p.activations_no_checkpointing * GIB == pytest.approx(acts_full) == 32000
    assert p.logprob_workspace * GIB == pytest.approx(logprobs)
    assert p.logprob_workspace_naive * GIB == pytest.approx(logprobs_naive)
    assert p.lm_head_gradient * GIB == pytest.approx(lm_head_grad)
    assert p.live_parameters * GIB == pytest.approx(live) and live == 31424
    total = params + grads + optim + gather + live + ref + acts_ckpt + logprobs + lm_head_grad
    assert total == 106600
    assert p.total * GIB == pytest.approx(total)
    assert p.cpu_per_node == 0 and p.fits and p.smallest_nodes == 1
    # Host RAM: no offload; rank 0's full bf16 copy + 4 ranks x 4 GiB process allowance.
    assert p.host_full_state_dict * GIB == pytest.approx(2 * TOY_TOTAL)
    assert p.host_per_node * GIB == pytest.approx(2 * TOY_TOTAL + 4 * 4 * GIB)
    assert p.slurm_mem_gb == math.ceil((2 * TOY_TOTAL + 16 * GIB) / 1e9) == 18


def test_toy_plan_flash_attention_and_overhead():
    p = plan(TOY, toy_settings(flash_attention=True, gradient_checkpointing=False, overhead_gib=1.5))
    # tokens * (layers * saved + transient), saved without the 5*heads*seq scores: 640, transient 400.
    assert p.activations * GIB == pytest.approx(16 * (2 * 640 + 400))
    assert p.overhead == 1.5
    no_overhead = plan(TOY, toy_settings(flash_attention=True, gradient_checkpointing=False))
    assert p.total - no_overhead.total == pytest.approx(1.5)


def test_toy_plan_lora_adapter_reference_by_hand():
    p = plan(TOY, toy_settings(lora_rank=2, reference="adapter"))
    n = 4
    assert p.trainable_params == TOY_LORA_R2
    assert p.parameters * GIB == pytest.approx(2 * (TOY_TOTAL + TOY_LORA_R2) / n)  # frozen base + adapters
    assert p.gradients * GIB == pytest.approx(2 * TOY_LORA_R2 / n)
    assert p.optimizer_states * GIB == pytest.approx(12 * TOY_LORA_R2 / n)
    assert p.gather_buffer * GIB == pytest.approx(2 * 1600)  # frozen embedding: no gathered grads
    assert p.reference_model == 0


def test_toy_plan_ddp_replicates_everything():
    p = plan(TOY, toy_settings(zero_stage=0, reference="none"))
    assert p.parameters * GIB == pytest.approx(2 * TOY_TOTAL)
    assert p.optimizer_states * GIB == pytest.approx(12 * TOY_TOTAL)
    assert p.gather_buffer == 0


def test_toy_offload_moves_states_to_cpu():
    s = toy_settings(offload_optimizer="cpu", cpu_buffer_factor=1.5)
    p = plan(TOY, s)
    assert p.gradients == 0 and p.optimizer_states == 0
    assert p.parameters * GIB == pytest.approx(2 * TOY_TOTAL / 4)
    # per GPU (12 B optimizer + 4 B fp32 grads) * P / 4, times 4 GPUs on the node, times 1.5 buffer.
    assert p.cpu_per_node * GIB == pytest.approx((12 + 4) * TOY_TOTAL / 4 * 4 * 1.5)

    q = plan(TOY, replace(s, offload_params="cpu"))
    assert q.parameters == 0 and q.reference_model == 0
    # plus bf16 params and the bf16 reference copy.
    assert q.cpu_per_node * GIB == pytest.approx((12 + 4 + 2 + 2) * TOY_TOTAL * 1.5)
    assert not plan(TOY, replace(s, cpu_memory_gib=q.cpu_per_node / 2, offload_params="cpu")).fits


@pytest.mark.parametrize("arch", [LLAMA_3_1_8B, LLAMA_3_1_70B], ids=lambda a: a.name)
@pytest.mark.parametrize("offload", [("none", "none"), ("cpu", "none"), ("cpu", "cpu")])
def test_model_states_agree_with_deepspeed_estimator(arch, offload):
    from ifpo.scale.deepspeed_estimate import deepspeed_zero3_model_states

    opt, par = offload
    # DeepSpeed assumes fp32 gradients (2 + 4 + 12 = 18 B/param); with grad_bytes=4 we must agree exactly.
    s = PlanSettings(nodes=2, gpus_per_node=8, offload_optimizer=opt, offload_params=par, reference="none",
                     grad_bytes=4, cpu_buffer_factor=1.5)  # fmt: skip
    ours = plan(arch, s)
    ds = deepspeed_zero3_model_states(arch, s, zero_init=True)
    assert ours.model_states == pytest.approx(ds.gpu_gib, rel=1e-9)
    if opt == "cpu":
        assert ours.cpu_per_node == pytest.approx(ds.cpu_gib_per_node, rel=1e-9)
    # Default bf16 gradients: DeepSpeed's GPU figure is higher by exactly 2 B/param/GPU when grads stay on
    # GPU.
    default = plan(arch, replace(s, grad_bytes=2))
    gap = 2 * arch.total_params() / 16 / GIB if opt == "none" else 0.0
    assert ds.gpu_gib - default.model_states == pytest.approx(gap, abs=1e-6)


def test_more_gpus_means_less_model_state_per_gpu():
    states = [plan(LLAMA_3_1_70B, PlanSettings(nodes=n)).model_states for n in range(1, 9)]
    assert all(a > b for a, b in itertools.pairwise(states))
    acts = {plan(LLAMA_3_1_70B, PlanSettings(nodes=n)).activations for n in range(1, 9)}
    assert len(acts) == 1  # activations are per micro-batch, not sharded


def test_checkpointing_and_chunking_reduce_memory():
    on = plan(LLAMA_3_1_8B, PlanSettings(gradient_checkpointing=True))
    off = plan(LLAMA_3_1_8B, PlanSettings(gradient_checkpointing=False))
    assert on.activations < off.activations
    assert (
        on.activations == on.activations_checkpointing and off.activations == off.activations_no_checkpointing
    )
    naive = plan(LLAMA_3_1_8B, PlanSettings(logprob_chunk_tokens=None))
    assert on.logprob_workspace < naive.logprob_workspace == naive.logprob_workspace_naive
    # 8B, 2 x 4096 tokens, vocab 128256, fp32 logits + log-softmax = 7.83 GiB naive.
    assert naive.logprob_workspace == pytest.approx(2 * 4096 * 128256 * 8 / GIB)


def test_smallest_cluster_hand_constructed():
    # Full FT, ref copy, ZeRO-3, 4 GPUs/node: per GPU (2+2+12+2) * P / (4 n) + fixed.
    s = toy_settings()
    # gather + live params + activations (ckpt) + log-prob chunk + LM-head grad
    fixed = 4 * 1600 + 31424 + 20224 + 3200 + 6400
    three_nodes = 18 * TOY_TOTAL / (4 * 3) + fixed
    s = replace(s, gpu_memory_gib=(three_nodes + 1) / GIB)  # fits on 3 nodes, not on 2
    assert smallest_cluster(TOY, s) == 3
    assert plan(TOY, s).smallest_nodes == 3 and not plan(TOY, s).fits
    assert plan(TOY, replace(s, nodes=3)).fits
    # Below the unshardable part nothing helps.
    assert smallest_cluster(TOY, replace(s, gpu_memory_gib=(fixed - 1) / GIB)) is None
    # DDP does not shard: if one node is too small, so is every cluster.
    ddp = replace(s, zero_stage=0)
    assert smallest_cluster(TOY, ddp) is None
    # Search range respected.
    assert smallest_cluster(TOY, s, max_nodes=2) is None


def test_70b_full_finetune_needs_more_than_one_node_but_lora_fits_one():
    full = plan(LLAMA_3_1_70B, PlanSettings(nodes=1, reference="copy"))
    assert not full.fits and full.smallest_nodes is not None and full.smallest_nodes > 1
    lora = plan(LLAMA_3_1_70B, PlanSettings(nodes=1, lora_rank=16, reference="precomputed"))
    assert lora.fits and lora.smallest_nodes == 1


def test_settings_validation():
    with pytest.raises(ValueError):
        PlanSettings(reference="adapter")  # no LoRA adapter to disable
    with pytest.raises(ValueError):
        PlanSettings(zero_stage=0, offload_optimizer="cpu")
    with pytest.raises(ValueError):
        PlanSettings(offload_params="cpu")
    with pytest.raises(ValueError):
        PlanSettings(zero_stage=2)
    with pytest.raises(ValueError):
        LLAMA_3_1_8B.lora_params(8, ("qkv",))
    assert PlanSettings(lora_rank=8, lora_targets=["q_proj"]).lora_targets == ("q_proj",)


def test_sequences_per_forward_and_presets():
    assert sequences_per_forward(3, "dpo") == 6
    assert sequences_per_forward(3, "iopo") == 12
    assert sequences_per_forward(3, "sft") == 3
    assert get_arch("Llama-3.1-70B") is LLAMA_3_1_70B
    assert set(PRESETS) == {"llama-3.1-8b", "llama-3.1-70b", "qwen2-7b"}
    with pytest.raises(KeyError):
        get_arch("gpt-2")


def test_cli_prints_table_verdict_and_cluster(capsys):
    argv = ["--arch", "llama-3.1-70b", "--nodes", "2", "--gpus-per-node", "8", "--lora-rank", "16",
            "--ref", "precomputed", "--micro-batch", "2", "--seq-len", "4096"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected = plan(LLAMA_3_1_70B, PlanSettings(nodes=2, lora_rank=16, reference="precomputed"))
    assert f"{expected.total:.2f}" in out
    assert "FITS" in out and "smallest cluster: 1 node(s) x 8 GPUs = 8 GPUs" in out
    assert "log-prob workspace" in out

    assert main(["--arch", "llama-3.1-70b", "--nodes", "1", "--strict"]) == 1
    assert "DOES NOT FIT" in capsys.readouterr().out
    assert main(["--ref", "adapter"]) == 2  # invalid combination reported, not a traceback
