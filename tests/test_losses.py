"""Losses against hand computation and the course's worked examples."""

from __future__ import annotations

import math

import pytest
import torch

from annkit.losses import cross_entropy, reduce_loss


def test_softmax_worked_example_from_the_slides():
    # Deck 004 (Unicamp MC886, "Softmax Classification"): scores cat 5.1, dog 3.2, frog −1.7,
    # car −2.0 → e^z = 164.0, 24.5, 0.18, 0.13 → softmax = 0.87, 0.13, 0.00, 0.00.
    z = torch.tensor([5.1, 3.2, -1.7, -2.0])
    torch.testing.assert_close(z.exp(), torch.tensor([164.0, 24.5, 0.18, 0.13]), atol=0.05, rtol=0)
    p = torch.softmax(z, 0)
    assert [round(v, 2) for v in p.tolist()] == [0.87, 0.13, 0.00, 0.00]
    # cross-entropy of those logits for the true class "cat" is −ln 0.87…
    assert cross_entropy(z[None], torch.tensor([0])).item() == pytest.approx(-math.log(p[0].item()), rel=1e-6)


def test_cross_entropy_worked_example_in_bits():
    # Deck 002 (APS360 week 2, "Loss function"): predicted (0.01, 0.97, 0.02), truth class 0:
    # CE = −log₂ 0.01 = 6.64 bits. Logits ln p give softmax = p, so annkit's CE (nats) / ln 2 = 6.64.
    p = torch.tensor([[0.01, 0.97, 0.02]])
    ce_bits = cross_entropy(p.log(), torch.tensor([0])).item() / math.log(2)
    assert round(ce_bits, 2) == 6.64


def test_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 2])
    z = math.exp(2.0) + math.exp(1.0) + math.exp(0.1)
    expected = [-math.log(math.exp(2.0) / z), math.log(3.0)]
    torch.testing.assert_close(cross_entropy(logits, target), torch.tensor(expected))


def test_label_smoothing_formula():
    # q = (1 − ε)·one_hot + ε/K ; ℓ = −Σ q_k log p_k
    logits = torch.tensor([[2.0, 1.0, 0.1]])
    eps, k = 0.1, 3
    logp = torch.log_softmax(logits, 1)[0].tolist()
    q = [(1 - eps) * (i == 0) + eps / k for i in range(k)]
    expected = -sum(qi * lp for qi, lp in zip(q, logp))
    assert cross_entropy(logits, torch.tensor([0]), label_smoothing=eps).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_accepts_bf16_logits_and_returns_fp32():
    out = cross_entropy(torch.tensor([[1.0, 2.0]], dtype=torch.bfloat16), torch.tensor([1]))
    assert out.dtype == torch.float32


def test_reduction_rules():
    losses = torch.tensor([1.0, 2.0, 4.0])
    w = torch.tensor([1.0, 0.5, 0.0])
    assert reduce_loss(losses).item() == pytest.approx(7 / 3)
    assert reduce_loss(losses, w, "mean").item() == pytest.approx((1 + 1 + 0) / 3)  # Σwℓ/N
    assert reduce_loss(losses, w, "weighted_mean").item() == pytest.approx((1 + 1 + 0) / 1.5)  # Σwℓ/Σw
    with pytest.raises(ValueError):
        reduce_loss(losses, w, "sum")
