"""Loss heads against hand-computed values, their invariants, and float64 gradients."""

import itertools
import math

import pytest
import torch

from ifpo.losses import SequenceLogps, get_loss_head, registered_losses
from ifpo.models.batch import PaddedBatch

QUAD = ("x1y1", "x2y2", "x1y2", "x2y1")


def _batch(margin=None, roles=("chosen", "rejected"), n=5):
    """A typed batch of n examples: heads read only `margin` (its token tensors are placeholders)."""
    rows = len(roles) * n
    return PaddedBatch(
        input_ids=torch.zeros(rows, 1, dtype=torch.long),
        attention_mask=torch.ones(rows, 1, dtype=torch.long),
        labels=torch.full((rows, 1), -100, dtype=torch.long),
        margin=torch.zeros(n, dtype=torch.float64) if margin is None else margin,
        roles=tuple(roles),
    )


def _pair_logps(generator, n=5, dtype=torch.float64, requires_grad=False):
    def rand():
        return (torch.randn(n, generator=generator, dtype=dtype) * 3 - 20).requires_grad_(requires_grad)

    policy = {"chosen": rand(), "rejected": rand()}
    reference = {"chosen": rand(), "rejected": rand()}
    tokens = {
        "chosen": torch.randint(1, 30, (n,), generator=generator),
        "rejected": torch.randint(1, 30, (n,), generator=generator),
    }
    return SequenceLogps(policy=policy, tokens=tokens, reference=reference)


def _quad_logps(generator, n=5, dtype=torch.float64):
    roles = ("x1y1", "x2y2", "x1y2", "x2y1")
    policy = {r: torch.randn(n, generator=generator, dtype=dtype) - 10 for r in roles}
    reference = {r: torch.randn(n, generator=generator, dtype=dtype) - 10 for r in roles}
    tokens = {r: torch.randint(1, 30, (n,), generator=generator) for r in roles}
    return SequenceLogps(policy=policy, tokens=tokens, reference=reference)


def _log_sigmoid(z: float) -> float:
    return -math.log1p(math.exp(-z))


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def test_registry_lists_all_heads():
    assert set(registered_losses()) >= {"sft", "dpo", "iopo", "rpo"}
    with pytest.raises(ValueError, match="registered heads"):
        get_loss_head("dpp")


def test_dpo_sigmoid_matches_hand_computation(gen):
    logps = _pair_logps(gen)
    beta, eps = 0.3, 0.1
    out = get_loss_head("dpo", beta=beta, label_smoothing=eps)(logps, _batch())
    expected = []
    for i in range(5):
        delta = (logps.policy["chosen"][i] - logps.reference["chosen"][i]) - (
            logps.policy["rejected"][i] - logps.reference["rejected"][i]
        )
        z = beta * float(delta)
        expected.append(-(1 - eps) * _log_sigmoid(z) - eps * _log_sigmoid(-z))
    assert out.loss.item() == pytest.approx(sum(expected) / 5, rel=1e-12)
    acc = [1.0 if (logps.reward("chosen")[i] > logps.reward("rejected")[i]) else 0.0 for i in range(5)]
    assert out.metrics["rewards/accuracies"].tolist() == acc


def test_dpo_ipo_and_hinge_variants(gen):
    logps = _pair_logps(gen)
    beta = 0.2
    ipo = get_loss_head("dpo", beta=beta, variant="ipo")(logps, _batch()).loss.item()
    hinge = get_loss_head("dpo", beta=beta, variant="hinge")(logps, _batch()).loss.item()
    ipo_expected, hinge_expected = 0.0, 0.0
    for i in range(5):
        rc = float(logps.policy["chosen"][i] - logps.reference["chosen"][i])
        rr = float(logps.policy["rejected"][i] - logps.reference["rejected"][i])
        avg = rc / int(logps.tokens["chosen"][i]) - rr / int(logps.tokens["rejected"][i])
        ipo_expected += (avg - 1 / (2 * beta)) ** 2 / 5
        hinge_expected += max(0.0, 1 - beta * (rc - rr)) / 5
    assert ipo == pytest.approx(ipo_expected, rel=1e-12)
    assert hinge == pytest.approx(hinge_expected, rel=1e-12)


def test_dpo_sft_term_adds_per_token_nll(gen):
    logps = _pair_logps(gen)
    base = get_loss_head("dpo", beta=0.1)(logps, _batch()).loss.item()
    with_sft = get_loss_head("dpo", beta=0.1, sft_weight=0.5)(logps, _batch()).loss.item()
    nll = sum(-float(logps.policy["chosen"][i]) / int(logps.tokens["chosen"][i]) for i in range(5)) / 5
    assert with_sft == pytest.approx(base + 0.5 * nll, rel=1e-12)


@pytest.mark.parametrize("margin_in_beta", [False, True])
def test_rpo_matches_hand_computation(gen, margin_in_beta):
    logps = _pair_logps(gen)
    margin = torch.tensor([0.0, 1.0, 2.0, 3.0, 5.0], dtype=torch.float64)
    beta, gamma = 0.1, 0.05
    out = get_loss_head("rpo", beta=beta, gamma=gamma, margin_in_beta=margin_in_beta)(logps, _batch(margin))
    expected = 0.0
    for i in range(5):
        delta = float(logps.reward("chosen")[i] - logps.reward("rejected")[i])
        g = float(margin[i])
        z = beta * (delta - gamma * g) if margin_in_beta else beta * delta - gamma * g
        expected += -_log_sigmoid(z) / 5
    assert out.loss.item() == pytest.approx(expected, rel=1e-12)


def test_rpo_with_zero_gamma_equals_dpo(gen):
    logps = _pair_logps(gen)
    batch = _batch(torch.tensor([1.0, 4.0, 2.0, 3.0, 7.0], dtype=torch.float64))
    rpo = get_loss_head("rpo", beta=0.1, gamma=0.0)(logps, batch).loss
    dpo = get_loss_head("dpo", beta=0.1)(logps, batch).loss
    assert torch.equal(rpo, dpo)


def test_larger_margin_gives_larger_rpo_loss(gen):
    logps = _pair_logps(gen)
    head = get_loss_head("rpo", beta=0.1, gamma=0.05)
    losses = [
        head(logps, _batch(torch.full((5,), float(g), dtype=torch.float64))).loss.item() for g in range(6)
    ]
    assert all(a < b for a, b in itertools.pairwise(losses))


def test_iopo_matches_both_forms_of_the_formula(gen):
    logps = _quad_logps(gen)
    beta = 0.25
    out = get_loss_head("iopo", beta=beta)(logps, _batch(roles=QUAD))
    expected_long, expected_short = 0.0, 0.0
    for i in range(5):
        r = {k: float(logps.policy[k][i] - logps.reference[k][i]) for k in logps.policy}
        long_form = (
            beta / 2 * ((2 * r["x1y1"] - r["x1y2"] - r["x2y1"]) + (2 * r["x2y2"] - r["x2y1"] - r["x1y2"]))
        )
        short_form = beta * (r["x1y1"] + r["x2y2"] - r["x1y2"] - r["x2y1"])
        expected_long += -_log_sigmoid(long_form) / 5
        expected_short += -_log_sigmoid(short_form) / 5
    assert out.loss.item() == pytest.approx(expected_long, rel=1e-12)
    assert out.loss.item() == pytest.approx(expected_short, rel=1e-12)


def test_iopo_invariant_to_swapping_the_two_halves(gen):
    logps = _quad_logps(gen)
    swap = {"x1y1": "x2y2", "x2y2": "x1y1", "x1y2": "x2y1", "x2y1": "x1y2"}
    swapped = SequenceLogps(
        policy={swap[k]: v for k, v in logps.policy.items()},
        tokens={swap[k]: v for k, v in logps.tokens.items()},
        reference={swap[k]: v for k, v in logps.reference.items()},
    )
    head = get_loss_head("iopo", beta=0.1)
    batch = _batch(roles=QUAD)
    assert head(logps, batch).loss.item() == pytest.approx(head(swapped, batch).loss.item(), rel=1e-14)


@pytest.mark.parametrize("name,kwargs", [("dpo", {}), ("rpo", {"gamma": 0.0}), ("iopo", {})])
def test_policy_equal_to_reference_gives_ln2(gen, name, kwargs):
    logps = _quad_logps(gen) if name == "iopo" else _pair_logps(gen)
    same = SequenceLogps(policy=logps.policy, tokens=logps.tokens, reference=dict(logps.policy))
    out = get_loss_head(name, beta=0.1, **kwargs)(same, _batch(torch.ones(5, dtype=torch.float64)))
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-15)


def test_sft_is_token_weighted_nll(gen):
    logps = _pair_logps(gen)
    sft_logps = SequenceLogps(policy=logps.policy, tokens=logps.tokens)
    out = get_loss_head("sft")(sft_logps, _batch(roles=("chosen",)))
    expected = -float(logps.policy["chosen"].sum()) / int(logps.tokens["chosen"].sum())
    assert out.loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["dpo", "rpo", "iopo", "sft"])
def test_gradients_in_float64(gen, name):
    roles = ("x1y1", "x2y2", "x1y2", "x2y1") if name == "iopo" else ("chosen", "rejected")
    tokens = {r: torch.randint(1, 10, (3,), generator=gen) for r in roles}
    reference = {r: torch.randn(3, generator=gen, dtype=torch.float64) for r in roles}
    margin = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    head = get_loss_head(name, **({"beta": 0.5} if name != "sft" else {}))
    inputs = tuple(torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True) for _ in roles)

    def fn(*policy_values):
        logps = SequenceLogps(
            policy=dict(zip(roles, policy_values)),
            tokens=tokens,
            reference=None if name == "sft" else reference,
        )
        return head(logps, _batch(margin, roles, n=3)).loss

    assert torch.autograd.gradcheck(fn, inputs)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="allowed: sigmoid, ipo, hinge"):
        get_loss_head("dpo", variant="kto")
    with pytest.raises(ValueError, match="label_smoothing"):
        get_loss_head("iopo", label_smoothing=0.7)
    with pytest.raises(ValueError, match="only variant=sigmoid"):
        get_loss_head("rpo", variant="ipo")


@pytest.mark.parametrize("name,kwargs", [("dpo", {}), ("dpo", {"variant": "ipo"}), ("rpo", {"gamma": 0.5})])
def test_pair_metrics_have_trls_meaning(gen, name, kwargs):
    """TRL's DPOTrainer, by hand: chosen_rewards = beta * (pi_c - ref_c) (same for rejected),
    rewards/margins = mean(chosen_rewards - rejected_rewards), rewards/accuracies =
    mean(chosen_rewards > rejected_rewards), logps/chosen = mean(pi_c); every loss type."""
    logps = _pair_logps(gen)
    beta = 0.3
    out = get_loss_head(name, beta=beta, **kwargs)(logps, _batch(torch.ones(5)))
    chosen = [beta * float(logps.policy["chosen"][i] - logps.reference["chosen"][i]) for i in range(5)]
    rejected = [beta * float(logps.policy["rejected"][i] - logps.reference["rejected"][i]) for i in range(5)]
    trl = {
        "rewards/chosen": sum(chosen) / 5,
        "rewards/rejected": sum(rejected) / 5,
        "rewards/margins": sum(c - r for c, r in zip(chosen, rejected)) / 5,
        "rewards/accuracies": sum(c > r for c, r in zip(chosen, rejected)) / 5,
        "logps/chosen": sum(float(v) for v in logps.policy["chosen"]) / 5,
        "logps/rejected": sum(float(v) for v in logps.policy["rejected"]) / 5,
    }
    for key, value in trl.items():  # the module logs the mean of the per-example values
        assert out.metrics[key].mean().item() == pytest.approx(value, rel=1e-12), key
    assert 0 < trl["rewards/accuracies"] < 1  # both outcomes present: the comparison is not vacuous
    # For the sigmoid loss the margin is exactly the logit inside log sigma (TRL's identity).
    if name == "dpo" and not kwargs:
        assert out.loss.item() == pytest.approx(
            sum(-_log_sigmoid(c - r) for c, r in zip(chosen, rejected)) / 5, rel=1e-12
        )


def test_iopo_metrics_are_beta_scaled_per_side(gen):
    logps = _quad_logps(gen)
    beta = 0.25
    out = get_loss_head("iopo", beta=beta)(logps, _batch(roles=QUAD))
    for i in range(5):
        r = {k: beta * float(logps.policy[k][i] - logps.reference[k][i]) for k in logps.policy}
        chosen, rejected = (r["x1y1"] + r["x2y2"]) / 2, (r["x1y2"] + r["x2y1"]) / 2
        expected = {
            "rewards/r11": r["x1y1"],
            "rewards/r22": r["x2y2"],
            "rewards/r12": r["x1y2"],
            "rewards/r21": r["x2y1"],
            "rewards/chosen": chosen,
            "rewards/rejected": rejected,
            "rewards/margins": chosen - rejected,
            "rewards/accuracies": float(chosen > rejected),
            "rewards/output_margins": (2 * r["x1y1"] - r["x1y2"] - r["x2y1"]) / 2,
            "rewards/input_margins": (2 * r["x2y2"] - r["x2y1"] - r["x1y2"]) / 2,
        }
        for key, value in expected.items():
            assert out.metrics[key][i].item() == pytest.approx(value, rel=1e-12), key
        # The two sides sum to the loss logit, which is twice the margin.
        logit = expected["rewards/output_margins"] + expected["rewards/input_margins"]
        assert logit == pytest.approx(2 * expected["rewards/margins"], rel=1e-12)
