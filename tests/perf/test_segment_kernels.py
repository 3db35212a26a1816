"""Segment attention kernels: flex_attention and flash-attn varlen against the padded layout, and the choice.

torch's CPU build runs flex_attention forward only, so on the CPU flex is checked on no-grad
calls (what the reference model does) for every head and for sliding-window / soft-capped
attention; gradients through flex are checked where CUDA exists. Compiles are the slow part
(seconds each), so the tests share a few shapes.
"""

from __future__ import annotations

import pytest
import torch

from ifpo.models import segment_kernels as sk
from ifpo.models.forward import role_logps
from ifpo.models.packing import SegmentLayout
from tests.perf.test_model_families import ROLES, build, examples, flat, layouts, naive_logps
from tests.perf.test_packing_equivalence import LOSSES, batches, make_module

CUDA = torch.cuda.is_available()


# -- the choice ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requested,device,dtype,grad,shares,flash,expected",
    [
        ("sdpa", "cuda", torch.bfloat16, True, False, True, "sdpa"),
        ("flex", "cuda", torch.bfloat16, True, True, False, "flex"),
        ("flex", "cpu", torch.float32, False, True, False, "flex"),  # CPU flex: forward only ...
        ("flex", "cpu", torch.float32, True, True, False, "sdpa"),  # ... so training calls fall back
        ("auto", "cpu", torch.float32, False, True, False, "sdpa"),  # measured slower on the CPU (README)
        ("auto", "cuda", torch.bfloat16, True, False, True, "flash_varlen"),  # plain packing + flash-attn
        ("auto", "cuda", torch.bfloat16, True, True, True, "measure"),  # shared prompts: flash cannot mask
        ("auto", "cuda", torch.bfloat16, True, False, False, "measure"),  # flash-attn not installed
        ("auto", "cuda", torch.float32, True, False, True, "measure"),  # flash-attn needs half precision
        ("auto", "cpu", torch.bfloat16, True, False, True, "sdpa"),  # flash-attn needs CUDA
    ],
)
def test_kernel_choice_and_fallbacks(requested, device, dtype, grad, shares, flash, expected):
    assert sk.choose_kernel(requested, device, dtype, grad, shares, flash) == expected


def test_auto_uses_the_measured_kernel_once_measured(monkeypatch):
    monkeypatch.setitem(sk.MEASURED, "cuda", "flex")
    assert sk.choose_kernel("auto", "cuda", torch.bfloat16, True, True, False) == "flex"


def test_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="model.segment_attention"):
        sk.choose_kernel("flash", "cpu", torch.float32, False, True, False)


def test_flash_attn_is_reported_missing_here_or_used():
    has = sk.flash_available()
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        assert not has
    else:
        assert has


def test_bucket_lengths_bound_recompiles():
    lengths = {sk.bucket_length(n) for n in range(1, 65_537)}
    assert all(b % sk.FLEX_BLOCK == 0 for b in lengths)
    assert len(lengths) <= 4 * 9 + 4  # at most 4 buckets per doubling from 128 to 65,536 tokens
    for n in (1, 127, 129, 1000, 5000, 40_000):
        assert n <= sk.bucket_length(n) <= max(sk.FLEX_BLOCK, 1.25 * n + sk.FLEX_BLOCK)


# -- flex on the CPU (forward) --------------------------------------------------------------


@pytest.fixture(scope="module")
def modules():
    """One tiny-Llama module per head, built once (the flex graphs compile once for all tests)."""
    return {
        loss: make_module(loss, with_reference=loss != "sft", segment_attention="flex") for loss in LOSSES
    }


@pytest.mark.parametrize("prefix_sharing", [True, False], ids=["prefix_sharing", "packing_only"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_flex_forward_matches_padded_for_every_head(modules, loss, prefix_sharing):
    module = modules[loss]
    padded, packed = batches(loss, prefix_sharing)
    with torch.no_grad():
        expected, got = module.compute_logps(padded), module.compute_logps(packed)
    for role in module.head.roles:
        assert torch.allclose(got.policy[role], expected.policy[role], rtol=0, atol=1e-5), role
        if loss != "sft":
            assert torch.allclose(got.reference[role], expected.reference[role], rtol=0, atol=1e-5), role
    assert module.head(got, packed).loss.item() == pytest.approx(
        module.head(expected, padded).loss.item(), abs=1e-6
    )


def test_flex_really_runs_and_does_not_recompile_per_batch(modules, monkeypatch):
    from torch._dynamo.utils import counters

    calls = []
    real = sk.flex_row
    monkeypatch.setattr(sk, "flex_row", lambda *a, **k: calls.append(1) or real(*a, **k))
    module = modules["dpo"]
    with torch.no_grad():
        module.compute_logps(batches("dpo", True)[1])  # compiles (or reuses) this bucket
        graphs = counters["stats"]["unique_graphs"]
        packed = batches("dpo", True, longest_response=5)[1]  # another layout, same bucket
        assert sk.bucket_length(packed.input_ids.shape[1]) == sk.bucket_length(
            batches("dpo", True)[1].input_ids.shape[1]
        )
        module.compute_logps(packed)
    assert calls  # the flex kernel served these no-grad calls
    assert counters["stats"]["unique_graphs"] == graphs


def test_flex_falls_back_to_sdpa_for_gradients_on_cpu(modules):
    module = modules["dpo"]
    padded, packed = batches("dpo", True)
    grads = []
    for batch in (padded, packed):
        module.policy.zero_grad()
        module.head(module.compute_logps(batch), batch).loss.backward()
        grads.append({n: p.grad.clone() for n, p in module.policy.named_parameters()})
    for name, grad in grads[0].items():
        assert torch.allclose(grads[1][name], grad, rtol=1e-4, atol=1e-6), name


def test_flex_sliding_window_and_softcap_match_naive():
    """Gemma-2: soft-capped scores (score_mod), a window on one layer, none on the other, GQA.

    (Mistral's window is the same mask_mod path; one family keeps the compiles few.)
    """
    model = build("gemma2")
    exs = examples()
    with torch.no_grad():
        want = naive_logps(model, exs)
        batch = layouts(exs)["prefix_sharing"]
        got = flat(role_logps(model, batch, chunk_size=5, segment_attention="flex")[0])
    assert torch.allclose(got, want, rtol=0, atol=1e-5), (got - want).abs().max()


def test_flex_block_mask_skips_blocks_across_segments():
    """Segments of 300 tokens: most 128-token block pairs hold no allowed entry and are not visited."""
    from ifpo.data.packed_collate import PackedPreferenceCollator

    ex = [
        {"prompt_ids": list(range(3, 203)), "chosen_ids": [5] * 50, "rejected_ids": [6] * 50, "margin": 1.0}
    ] * 8
    layout = SegmentLayout.from_batch(PackedPreferenceCollator(ROLES, True)(ex), "flex")
    length = sk.bucket_length(8 * 300)
    mask = sk.row_block_mask(layout, None, length)
    blocks = length // sk.FLEX_BLOCK
    visited = int(mask.kv_num_blocks.sum())
    assert visited < 0.3 * blocks * blocks
    dense = mask.to_dense()[0, 0].bool()  # every allowed entry lies in a visited block
    for s in range(8):  # the prompt of each segment sees itself causally
        start = s * 300
        assert dense[(start + 199) // 128, start // 128]


# -- CUDA-only: gradients through flex, flash-attn varlen -----------------------------------


@pytest.mark.skipif(
    not CUDA, reason="flex_attention backward needs CUDA (torch's CPU build has no flex backward)"
)
@pytest.mark.parametrize("family", ["gemma2", "mistral"])
def test_flex_gradients_match_padded_on_cuda(family):
    model = build(family).cuda()
    exs = examples(seed=1)
    weights = torch.linspace(-1.0, 1.0, 2 * len(exs), device="cuda")
    grads = {}
    for name, batch in layouts(exs).items():
        batch = batch.to("cuda")
        model.zero_grad()
        (flat(role_logps(model, batch, chunk_size=5, segment_attention="flex")[0]) * weights).sum().backward()
        grads[name] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for name in ("prefix_sharing", "packing_only"):
        for param, grad in grads["padded"].items():
            assert torch.allclose(grads[name][param], grad, rtol=1e-4, atol=1e-5), (name, param)


@pytest.mark.skipif(
    not (CUDA and sk.flash_available()), reason="flash-attn varlen needs CUDA and the flash_attn package"
)
def test_flash_varlen_matches_padded():
    model = build("mistral").cuda().to(torch.bfloat16)
    exs = examples()
    batches_ = {k: b.to("cuda") for k, b in layouts(exs).items()}
    calls = []
    real = sk.flash_varlen
    sk.flash_varlen = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        with torch.no_grad():
            want = flat(role_logps(model, batches_["padded"], chunk_size=5)[0])
            got = flat(role_logps(model, batches_["packing_only"], chunk_size=5, segment_attention="auto")[0])
    finally:
        sk.flash_varlen = real
    assert calls
    assert torch.allclose(got, want, rtol=0, atol=0.1)  # bfloat16


def test_config_switch_composes_and_rejects_unknown_values():
    from hydra.errors import ConfigCompositionException

    from tests.hydra_helpers import compose_config

    assert compose_config("train").model.segment_attention == "auto"
    assert compose_config("train", ["model.segment_attention=flex"]).model.segment_attention == "flex"
    with pytest.raises(ConfigCompositionException, match="segment_attention"):
        compose_config("train", ["model.segment_attention=flash"])


def test_measure_picks_the_faster_kernel_and_logs_it(caplog):
    import time

    def slow(q, k, v):
        time.sleep(0.01)
        return (q + k + v) * 2

    q = torch.randn(1, 2, 8, 4)
    with caplog.at_level("WARNING", logger="ifpo.models.segment_kernels"):
        assert sk._measure(q, q, q, {"sdpa": slow, "flex": lambda q, k, v: (q + k + v) * 3}) == "flex"
    assert "segment attention on cpu: flex" in caplog.text and "sdpa" in caplog.text


def _fake_flash_varlen(
    q,
    k,
    v,
    cu_q,
    cu_k,
    max_q,
    max_k,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    softcap=0.0,
):
    """flash-attn's documented semantics on [T, H, D] (causal, left window, soft-cap, GQA), in plain torch."""
    assert causal and torch.equal(cu_q, cu_k) and cu_q.dtype == torch.int32 and max_q == max_k
    out = torch.empty_like(q)
    groups = q.shape[1] // k.shape[1]
    for start, stop in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
        qs, ks, vs = (
            q[start:stop].transpose(0, 1),
            k[start:stop].transpose(0, 1),
            v[start:stop].transpose(0, 1),
        )
        ks, vs = ks.repeat_interleave(groups, 0), vs.repeat_interleave(groups, 0)
        scores = qs @ ks.transpose(-1, -2) * softmax_scale
        if softcap:
            scores = torch.tanh(scores / softcap) * softcap
        i = torch.arange(stop - start)
        allowed = i[None, :] <= i[:, None]
        if window_size[0] >= 0:
            allowed &= i[:, None] - i[None, :] <= window_size[0]
        out[start:stop] = (torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ vs).transpose(
            0, 1
        )
    return out


@pytest.mark.parametrize("family", ["gemma2", "mistral"])
def test_flash_varlen_call_is_wired_to_the_layout(family, monkeypatch):
    """Without flash-attn here: a stand-in with flash's documented semantics checks cu_seqlens, window,
    soft-cap."""
    import sys
    import types

    monkeypatch.setitem(
        sys.modules, "flash_attn", types.SimpleNamespace(flash_attn_varlen_func=_fake_flash_varlen)
    )
    monkeypatch.setattr(sk, "flash_available", lambda: True)
    monkeypatch.setattr(
        sk,
        "choose_kernel",
        lambda requested, device, dtype, grad, shares, flash: (
            "flash_varlen" if flash and not shares else "sdpa"
        ),
    )
    model = build(family)
    exs = examples()
    with torch.no_grad():
        want = naive_logps(model, exs)
        got = flat(role_logps(model, layouts(exs)["packing_only"], chunk_size=5)[0])
    assert torch.allclose(got, want, rtol=0, atol=1e-5), (got - want).abs().max()
