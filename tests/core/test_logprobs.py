"""Chunked log-probs equal the naive full-logits computation, values and gradients."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ifpo.data.collate import IGNORE_INDEX
from ifpo.models.logprobs import chunked_token_logprobs, naive_token_logprobs, sequence_logprobs


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_chunked_matches_naive_and_gradcheck(chunk):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(13, 6, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(17, 6, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(17, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 17, (13,), generator=g)
    got = chunked_token_logprobs(hidden, weight, targets, bias, chunk_size=chunk)
    want = torch.log_softmax(hidden @ weight.T + bias, -1).gather(-1, targets[:, None]).squeeze(-1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda h, w, b: chunked_token_logprobs(h, w, targets, b, chunk), (hidden, weight, bias)
    )


def test_float32_gradients_match_autograd_of_naive():
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(40, 16, generator=g, requires_grad=True)
    weight = torch.randn(50, 16, generator=g, requires_grad=True)
    targets = torch.randint(0, 50, (40,), generator=g)
    upstream = torch.randn(40, generator=g)
    (chunked_token_logprobs(hidden, weight, targets, chunk_size=8) * upstream).sum().backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad, weight.grad = None, None
    (naive_token_logprobs(hidden, weight, targets) * upstream).sum().backward()
    torch.testing.assert_close(grads[0], hidden.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], weight.grad, rtol=1e-5, atol=1e-5)


def test_sequence_logprobs_match_model_logits():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config).eval()
    input_ids = torch.randint(0, 64, (3, 12))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 9:] = 0  # right padding
    labels = input_ids.clone()
    labels[:, :5] = IGNORE_INDEX  # prompt
    labels[attention_mask == 0] = IGNORE_INDEX
    with torch.no_grad():
        hidden = model.model(input_ids=input_ids, attention_mask=attention_mask)[0]
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        sums, counts = sequence_logprobs(hidden, model.lm_head.weight, labels, chunk_size=4)
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    shifted = labels[:, 1:]
    mask = shifted != IGNORE_INDEX
    expected = (logp.gather(-1, shifted.clamp(min=0)[..., None]).squeeze(-1) * mask).sum(-1)
    torch.testing.assert_close(sums, expected, rtol=1e-5, atol=1e-5)
    assert counts.tolist() == mask.sum(-1).tolist() == [7, 7, 4]
