"""Log-probs of models that post-process attention or logits equal a naive per-sequence forward.

Tiny random-init Gemma-2 (attention and final-logit soft-capping, a sliding window on every
other layer), Mistral (a sliding window shorter than the sequences), Cohere (`logit_scale`)
and Granite (`logits_scaling`), built from transformers' own classes: for each sequence,
`model(prompt + response).logits -> log_softmax` summed over the response is the truth; the
padded and both packed layouts of `role_logps` must match it, and their gradients each other.
Each family also checks that the feature under test changes the result, so a test that
ignored it would fail.
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import (
    CohereConfig,
    CohereForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    GraniteConfig,
    GraniteForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

from ifpo.data.collate import PreferenceCollator
from ifpo.data.packed_collate import PackedPreferenceCollator
from ifpo.models.batch import Batch
from ifpo.models.forward import role_logps
from ifpo.models.logprobs import IDENTITY, logit_transform, naive_token_logprobs

VOCAB, WINDOW = 96, 6
SHAPE = {"vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "pad_token_id": 2,
         "bos_token_id": 0, "eos_token_id": 1, "initializer_range": 0.1}
ROLES = ("chosen", "rejected")


def gemma2() -> torch.nn.Module:
    config = Gemma2Config(**SHAPE, sliding_window=WINDOW, layer_types=["sliding_attention", "full_attention"],
                          attn_logit_softcapping=1.0, final_logit_softcapping=2.0, query_pre_attn_scalar=16)
    return Gemma2ForCausalLM(config)  # eager: transformers refuses sdpa with soft-capping


def mistral() -> torch.nn.Module:
    return MistralForCausalLM(MistralConfig(**SHAPE, sliding_window=WINDOW))


def cohere() -> torch.nn.Module:
    return CohereForCausalLM(CohereConfig(**SHAPE, logit_scale=0.25))


def granite() -> torch.nn.Module:
    return GraniteForCausalLM(GraniteConfig(**SHAPE, logits_scaling=4.0, attention_multiplier=0.2))


FAMILIES = {"gemma2": (gemma2, "eager"), "mistral": (mistral, "sdpa"), "cohere": (cohere, "sdpa"),
            "granite": (granite, "sdpa")}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: the float32 tolerances below compare layouts, not thread schedules (a
    multi-threaded embedding backward reorders its sums and moves a gradient entry by ~3e-6)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(family: str) -> torch.nn.Module:
    factory, attn = FAMILIES[family]
    torch.manual_seed(0)
    model = factory()
    model.config._attn_implementation = attn
    return model.eval()


def examples(n: int = 3, seed: int = 0) -> list[dict]:
    """Prompts longer than the window (so it cuts), responses of 1 to 9 tokens."""
    g = torch.Generator().manual_seed(seed)

    def ids(low: int, high: int) -> list[int]:
        length = int(torch.randint(low, high, (1,), generator=g))
        return torch.randint(3, VOCAB, (length,), generator=g).tolist()

    out = [{"prompt_ids": ids(8, 24), "chosen_ids": ids(1, 10), "rejected_ids": ids(2, 10), "margin": 1.0}
           for _ in range(n)]
    out[0]["chosen_ids"] = [7]
    return out


def naive_logps(model: torch.nn.Module, exs: list[dict]) -> torch.Tensor:
    """Role-major [chosen..., rejected...] sums from one unpadded forward per sequence."""
    sums = []
    for role in ROLES:
        for ex in exs:
            prompt, response = ex["prompt_ids"], ex[f"{role}_ids"]
            ids = torch.tensor([prompt + response])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
            targets = ids[0, 1:]
            picked = logp.gather(-1, targets[:, None]).squeeze(-1)[len(prompt) - 1 :]
            sums.append(picked.sum())
    return torch.stack(sums)


def layouts(exs: list[dict]) -> dict[str, Batch]:
    return {"padded": PreferenceCollator(ROLES, pad_token_id=2)(exs),
            "prefix_sharing": PackedPreferenceCollator(ROLES, prefix_sharing=True)(exs),
            "packing_only": PackedPreferenceCollator(ROLES, prefix_sharing=False)(exs)}


def flat(logps: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([logps[role] for role in ROLES])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_logps_match_naive_forward_in_every_layout(family):
    model = build(family)
    exs = examples()
    with torch.no_grad():
        want = naive_logps(model, exs)
        for name, batch in layouts(exs).items():
            got = flat(role_logps(model, batch, chunk_size=5, segment_attention="sdpa")[0])
            assert torch.allclose(got, want, rtol=0, atol=1e-5), (name, (got - want).abs().max())
    assert want.abs().max() < 64  # float32 ulp below 4e-6: 1e-5 is a real tolerance


@pytest.mark.parametrize("family", list(FAMILIES))
def test_packed_gradients_match_padded(family):
    model = build(family)
    exs = examples(seed=1)
    weights = torch.linspace(-1.0, 1.0, 2 * len(exs))
    grads = {}
    for name, batch in layouts(exs).items():
        model.zero_grad()
        (flat(role_logps(model, batch, chunk_size=5, segment_attention="sdpa")[0]) * weights).sum().backward()
        grads[name] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads["padded"]
    for name in ("prefix_sharing", "packing_only"):
        for param, grad in grads["padded"].items():
            assert torch.allclose(grads[name][param], grad, rtol=1e-4, atol=1e-6), (name, param)


def test_features_under_test_change_the_result():
    """Without the soft-caps, scales and windows the naive log-probs differ: the tests above see them."""
    exs = examples()
    with torch.no_grad():
        for family in ("gemma2", "cohere", "granite"):
            model = build(family)
            transform = logit_transform(model.config)
            assert not transform.identity, family
            hidden = torch.randn(20, SHAPE["hidden_size"])
            targets = torch.randint(0, VOCAB, (20,))
            weight = model.lm_head.weight
            changed = naive_token_logprobs(hidden, weight, targets, transform=transform)
            assert (changed - naive_token_logprobs(hidden, weight, targets,
            transform=IDENTITY)).abs().max() > 1e-2
        for family in ("mistral", "gemma2"):
            model = build(family)
            unwindowed = copy.deepcopy(model)
            unwindowed.config.sliding_window = 10_000
            for layer in unwindowed.model.layers:
                if getattr(layer.self_attn, "sliding_window", None):
                    layer.self_attn.sliding_window = 10_000
            assert (naive_logps(model, exs) - naive_logps(unwindowed, exs)).abs().max() > 1e-3, family
        gemma = build("gemma2")
        uncapped = copy.deepcopy(gemma)
        for layer in uncapped.model.layers:
            layer.self_attn.attn_logit_softcapping = None
        uncapped.config.final_logit_softcapping = None
        assert (naive_logps(gemma, exs) - naive_logps(uncapped, exs)).abs().max() > 1e-3


def test_logit_transform_reads_each_field():
    assert logit_transform(CohereConfig(logit_scale=0.25)).scale == 0.25
    assert logit_transform(GraniteConfig(logits_scaling=4.0)).scale == 0.25
    gemma = logit_transform(Gemma2Config(final_logit_softcapping=30.0))
    assert gemma.softcap == 30.0 and gemma.scale == 1.0
    assert logit_transform(LlamaConfig()).identity


def test_chunked_logit_transform_gradcheck():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(9, 5, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(11, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (9,), generator=g)
    from ifpo.models.logprobs import LogitTransform, chunked_token_logprobs

    transform = LogitTransform(scale=0.7, softcap=1.5)
    got = chunked_token_logprobs(hidden, weight, targets, bias, 4, transform)
    want = naive_token_logprobs(hidden.double(), weight, targets, bias, transform)
    torch.testing.assert_close(got, want.double(), rtol=0, atol=1e-6)  # naive casts logits to float32
    assert torch.autograd.gradcheck(
        lambda h, w, b: chunked_token_logprobs(h, w, targets, b, 4, transform), (hidden, weight, bias)
    )


def test_unsupported_attention_is_refused_naming_the_field():
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SHAPE))
    model.config.attention_chunk_size = 8  # Llama-4's chunked local attention
    batch = layouts(examples())["prefix_sharing"]
    with pytest.raises(ValueError, match="attention_chunk_size"):
        role_logps(model, batch, chunk_size=5)
