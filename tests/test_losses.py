"""Losses against hand computation and the course's worked examples."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from annkit.head import Head
from annkit.loop import train_step
from annkit.losses import (
    balanced_class_weights,
    binary_cross_entropy,
    cross_entropy,
    penalized_weights,
    reduce_loss,
    sample_weights,
    squared_error,
    weight_penalty,
)
from annkit.models import MLP


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
    assert reduce_loss(losses, w, "sum").item() == pytest.approx(
        1 + 1 + 0
    )  # Σwℓ: the perceptron rule's, not a config value
    with pytest.raises(ValueError):
        reduce_loss(losses, w, "total")


def test_squared_error_worked_example_from_the_slides():
    # Deck 002 (APS360 week 2, "Loss function"): predicted (0.01, 0.97, 0.02), truth class 0:
    # the slide's squared error (0.01 − 1.0)² = 0.98 is the true class's term; annkit's per-sample MSE
    # is the mean over the K outputs (Keras's convention): (0.9801 + 0.9409 + 0.0004) / 3 = 0.64047.
    p = torch.tensor([[0.01, 0.97, 0.02]])
    one_hot = torch.tensor([[1.0, 0.0, 0.0]])
    terms = (p - one_hot) ** 2
    assert round(terms[0, 0].item(), 2) == 0.98
    assert squared_error(p, one_hot).item() == pytest.approx((0.9801 + 0.9409 + 0.0004) / 3)
    # through the head: mse on classes compares softmax(z) with the one-hot target; z = ln p gives softmax = p
    head = Head("classification", ["a", "b", "c"], "mse", "softmax")
    assert head.loss_fn()(p.log(), torch.tensor([0])).item() == pytest.approx(1.9214 / 3, abs=1e-6)


def test_binary_cross_entropy_by_hand_with_pos_weight():
    # ℓ = −(1/K) Σ_k [a·t·log σ(z) + (1 − t)·log(1 − σ(z))]  (deck 002: BCE = −[t log y + (1 − t) log(1 − y)])
    z = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s = torch.sigmoid(z)
    for a in (1.0, 3.0):
        expected = -(a * t * s.log() + (1 - t) * (1 - s).log()).mean(dim=1)
        torch.testing.assert_close(binary_cross_entropy(z, t, pos_weight=torch.tensor(a)), expected)
    # the deck's single neuron: y = σ(w·x), e = −t log y − (1 − t) log(1 − y)
    y = torch.sigmoid(torch.tensor([0.3]))
    assert binary_cross_entropy(torch.tensor([[0.3]]), torch.tensor([[1.0]])).item() == pytest.approx(
        -math.log(y.item())
    )


def test_binary_head_has_one_sigmoid_output_and_thresholds_at_one_half():
    head = Head("classification", ["no", "yes"], "bce", "sigmoid")
    assert head.outputs == 1 and head.single_output
    z = torch.tensor([[-0.1], [0.0], [0.2]])
    assert head.predict(z).tolist() == [0, 0, 1]  # σ(z) > 0.5 ⇔ z > 0
    assert head.hits(z, torch.tensor([0, 1, 1])).item() == 2
    assert Head("classification", ["no", "yes"], "ce", "softmax").outputs == 2  # ce keeps one logit per class


def test_weighted_mean_matches_pytorch_and_mean_matches_keras():
    # weighted_mean = Σ wᵢℓᵢ / Σ wᵢ: PyTorch's CrossEntropyLoss(weight=class_weights) convention
    torch.manual_seed(0)
    z, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    cw = [0.5, 2.0, 1.0]
    w = sample_weights(y, cw, None)
    assert w.tolist() == [0.5, 2.0, 1.0, 1.0, 2.0, 0.5]
    reference = torch.nn.functional.cross_entropy(z, y, weight=torch.tensor(cw))
    assert reduce_loss(cross_entropy(z, y), w, "weighted_mean").item() == pytest.approx(reference.item(), rel=1e-6)
    # mean = Σ wᵢℓᵢ / N: Keras's sample_weight convention ("sum over batch size")
    by_hand = sum(wi * li for wi, li in zip(w.tolist(), cross_entropy(z, y).tolist())) / 6
    assert reduce_loss(cross_entropy(z, y), w, "mean").item() == pytest.approx(by_hand, rel=1e-6)


def test_class_and_sample_weights_multiply():
    y = torch.tensor([0, 1, 1])
    assert sample_weights(y, [2.0, 0.5], torch.tensor([1.0, 4.0, 0.0])).tolist() == [2.0, 2.0, 0.0]
    assert sample_weights(y, None, None) is None
    assert sample_weights(y, None, torch.tensor([3.0, 1.0, 1.0])).tolist() == [3.0, 1.0, 1.0]


def test_balanced_class_weights_formula():
    # w_c = n / (K · n_c): 100 samples, 3 classes of 70, 20, 10 → 100/210, 100/60, 100/30
    w = balanced_class_weights([70, 20, 10])
    assert w == pytest.approx([100 / 210, 100 / 60, 100 / 30])
    assert sum(wc * nc for wc, nc in zip(w, [70, 20, 10])) == pytest.approx(100)  # the weights average to 1 per sample
    assert balanced_class_weights([5, 0, 5]) == [1.0, 0.0, 1.0]  # an absent class gets 0; K counts the 2 present


def test_l2_penalty_is_lambda_over_2m_sum_of_squared_weights_not_biases():
    # Deck 004 ("Cost Function"): J(Θ) = … + λ/(2m) Σ_l Σ_i Σ_j (Θ_ji^(l))², biases excluded
    torch.manual_seed(0)
    model = MLP(3, [4], 2, "tanh", norm="batch")
    weights = penalized_weights(model)
    linears = [m for m in model.layers if isinstance(m, torch.nn.Linear)]
    assert [w.shape for w in weights] == [(4, 3), (2, 4)]  # no biases, no batch-norm γ/β
    lam, m = 0.3, 50
    expected = lam / (2 * m) * sum((lin.weight**2).sum() for lin in linears)
    penalty = weight_penalty(weights, l1=0.0, l2=lam, m=m)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)
    penalty.backward()
    torch.testing.assert_close(linears[0].weight.grad, lam / m * linears[0].weight.detach())  # ∂/∂W = λ/m · W
    assert linears[0].bias.grad is None
    l1 = weight_penalty(weights, l1=0.2, l2=0.0, m=m)
    assert l1.item() == pytest.approx(0.2 / m * sum(lin.weight.abs().sum() for lin in linears).item(), rel=1e-6)


def test_data_loss_and_penalty_are_reported_apart():
    torch.manual_seed(0)
    model = MLP(2, [3], 2, "tanh")
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    penalty = partial(weight_penalty, penalized_weights(model), l1=0.0, l2=1.0, m=4)
    data, reg, _ = train_step(model, opt, x, y, loss_fn=cross_entropy, penalty=penalty)
    assert data.item() == pytest.approx(cross_entropy(model(x), y).mean().item(), rel=1e-6)
    assert reg.item() == pytest.approx(penalty().item(), rel=1e-6) and reg.item() > 0
