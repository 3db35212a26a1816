"""Packed (padding-free, prefix-shared) batches give the padded batches' log-probs and losses."""

import copy

import pytest
import torch

from ifpo.data.collate import PreferenceCollator
from ifpo.data.packed_collate import PackedPreferenceCollator
from ifpo.losses import get_loss_head
from ifpo.training.module import PreferenceModule
from tests.hydra_helpers import ROOT

ASSETS = ROOT / "src" / "ifpo" / "assets"
MODEL = {
    "name_or_path": None,
    "config": str(ASSETS / "tiny_llama"),
    "tokenizer": str(ASSETS / "tiny_tokenizer"),
    "dtype": "float32",
    "attn_implementation": "sdpa",
    "gradient_checkpointing": False,
    "logprob_chunk_size": 37,
    "trust_remote_code": False,
}
OPTIM = {
    "lr": 1e-3,
    "weight_decay": 0.0,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "scheduler": "constant_with_warmup",
    "warmup_ratio": 0.0,
    "min_lr_ratio": 0.0,
}
LOSSES = {
    "sft": {"name": "sft"},
    "dpo": {"name": "dpo", "beta": 0.1},
    "rpo": {"name": "rpo", "beta": 0.1, "gamma": 0.05},
    "iopo": {"name": "iopo", "beta": 0.1},
}
LAYOUTS = [pytest.param(True, id="prefix_sharing"), pytest.param(False, id="packing_only")]


def _ids(generator, low, high):
    return torch.randint(
        3, 1000, (int(torch.randint(low, high, (1,), generator=generator)),), generator=generator
    ).tolist()


def make_examples(kind, n=3, seed=0, longest_response=9):
    """Varied lengths, including a one-token response, so padding really differs per row.

    Responses stay short by default so summed log-probs stay below 64 in magnitude, where a
    float32 ulp is 3.8e-6 and "within 1e-5" is a real test (above 64 one ulp is 7.6e-6).
    """
    g = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(n):
        r = longest_response
        if kind == "pair":
            ex = {"prompt_ids": _ids(g, 5, 40), "chosen_ids": _ids(g, 1, r), "rejected_ids": _ids(g, 2, r)}
        else:
            ex = {
                "x1_ids": _ids(g, 5, 40),
                "x2_ids": _ids(g, 5, 40),
                "y1_ids": _ids(g, 1, r),
                "y2_ids": _ids(g, 2, r),
            }
        ex["margin"] = float(i + 1)
        examples.append(ex)
    examples[0]["chosen_ids" if kind == "pair" else "y1_ids"] = [7]
    return examples


def make_module(loss, with_reference=True, **model):
    torch.manual_seed(0)
    ref = {"mode": "copy" if with_reference else "none", "name_or_path": None}
    module = PreferenceModule({**MODEL, **model}, ref, LOSSES[loss], OPTIM)
    module.configure_model()
    with torch.no_grad():  # a reference that differs from the policy, so rewards are not all zero
        if module.reference is not None:
            for p in module.reference.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    return module


def batches(loss, prefix_sharing, n=3, longest_response=9):
    head = get_loss_head(**LOSSES[loss])
    examples = make_examples(head.record_kind, n, longest_response=longest_response)
    return (
        PreferenceCollator(head.roles, pad_token_id=2)(examples),
        PackedPreferenceCollator(head.roles, prefix_sharing=prefix_sharing)(examples),
    )


@pytest.mark.parametrize("prefix_sharing", LAYOUTS)
@pytest.mark.parametrize(
    "loss,with_reference", [("sft", False), ("dpo", True), ("rpo", True), ("iopo", True), ("dpo", False)]
)
def test_packed_logps_and_loss_match_padded(loss, with_reference, prefix_sharing):
    module = make_module(loss, with_reference=with_reference or loss != "sft")
    padded, packed = batches(loss, prefix_sharing)
    if loss != "sft" and not with_reference:  # no reference model: log-probs precomputed by a pre-pass
        with torch.no_grad():
            precomputed = module.compute_logps(padded).reference
        module.reference = None
        padded, packed = padded.with_reference(precomputed), packed.with_reference(precomputed)
    expected, got = module.compute_logps(padded), module.compute_logps(packed)
    assert max(v.abs().max().item() for v in expected.policy.values()) < 64
    for role in module.head.roles:
        assert torch.allclose(got.policy[role], expected.policy[role], rtol=0, atol=1e-5), role
        assert torch.equal(got.tokens[role], expected.tokens[role]), role
        if loss != "sft":
            assert torch.allclose(got.reference[role], expected.reference[role], rtol=0, atol=1e-5), role
            assert (got.reward(role).abs() > 1e-3).any()  # the comparison is not trivially 0 == 0
    assert module.head(got, packed).loss.item() == pytest.approx(
        module.head(expected, padded).loss.item(), abs=1e-6
    )


@pytest.mark.parametrize("prefix_sharing", LAYOUTS)
def test_packed_gradients_match_padded(prefix_sharing):
    module = make_module("dpo")
    padded, packed = batches("dpo", prefix_sharing, longest_response=30)
    grads = []
    for batch in (padded, packed):
        module.policy.zero_grad()
        module.head(module.compute_logps(batch), batch).loss.backward()
        grads.append({n: p.grad.clone() for n, p in module.policy.named_parameters()})
    for name, grad in grads[0].items():
        assert torch.allclose(grads[1][name], grad, rtol=1e-4, atol=1e-6), name


def test_activation_checkpointing_recomputes_with_segment_attention():
    """Backward replays the forward: it must take the same (segment) attention path."""
    plain, checkpointed = make_module("dpo"), make_module("dpo", gradient_checkpointing=True)
    checkpointed.policy.train()
    assert checkpointed.policy.is_gradient_checkpointing
    _, packed = batches("dpo", True)
    grads = []
    for module in (plain, checkpointed):
        module.head(module.compute_logps(packed), packed).loss.backward()
        grads.append([p.grad for p in module.policy.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_unpacked_calls_are_unchanged_after_install():
    module = make_module("dpo")
    padded, packed = batches("dpo", True)
    model = copy.deepcopy(module.policy)
    before = model(input_ids=padded.input_ids, attention_mask=padded.attention_mask).logits
    module.compute_logps(packed)  # installs segment attention on the policy
    assert module.policy.config._attn_implementation == "ifpo_segments_sdpa"
    after = module.policy(input_ids=padded.input_ids, attention_mask=padded.attention_mask).logits
    assert torch.allclose(before, after, atol=1e-6)
