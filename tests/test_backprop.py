"""The slides' one-hidden-layer backpropagation, by hand, equals autograd through annkit's own model,
head and training objective."""

from __future__ import annotations

import pytest
import torch

from annkit.head import Head
from annkit.losses import reduce_loss
from annkit.models import MLP


def test_one_hidden_layer_backprop_equations_equal_autograd():
    # Deck 000, "Neural Network with one hidden layer - Back propagation":
    #   z₁ = W₁x + b₁, a₁ = tanh(z₁), z₂ = W₂a₁ + b₂, a₂ = σ(z₂), J = −(1/m) Σ [y log a₂ + (1 − y) log(1 − a₂)]
    #   dz₂ = a₂ − y;  dW₂ = dz₂·a₁ᵀ;  db₂ = dz₂;  dz₁ = W₂ᵀdz₂ ∗ (1 − a₁²);  dW₁ = dz₁·xᵀ;  db₁ = dz₁ (averaged over m)
    torch.manual_seed(0)
    m = 32
    x = torch.randn(m, 3, dtype=torch.float64)  # one sample per row: the slides' column vectors, transposed
    y = torch.randint(0, 2, (m,))
    model = MLP(3, [4], 1, "tanh").double()
    first, last = model.layers[1], model.layers[3]
    head = Head("classification", ["0", "1"], "bce", "sigmoid")  # two classes, bce: one sigmoid output
    loss = reduce_loss(head.loss_fn()(model(x), y))  # annkit's training objective (no weights: the plain mean)
    loss.backward()

    W1, b1, W2, b2 = (p.detach() for p in (first.weight, first.bias, last.weight, last.bias))
    t = y.double().unsqueeze(1)
    a1 = torch.tanh(x @ W1.T + b1)  # m×4
    a2 = torch.sigmoid(a1 @ W2.T + b2)  # m×1
    dz2 = a2 - t
    dW2 = dz2.T @ a1 / m
    db2 = dz2.mean(0)
    dz1 = (dz2 @ W2) * (1 - a1**2)  # W₂ᵀdz₂ ∗ (1 − a₁²), row-wise
    dW1 = dz1.T @ x / m
    db1 = dz1.mean(0)
    assert loss.item() == pytest.approx(-(t * a2.log() + (1 - t) * (1 - a2).log()).mean().item(), rel=1e-12)
    for grad, by_hand in (
        (last.weight.grad, dW2),
        (last.bias.grad, db2),
        (first.weight.grad, dW1),
        (first.bias.grad, db1),
    ):
        torch.testing.assert_close(grad, by_hand, rtol=1e-10, atol=1e-12)


def test_gradient_descent_update_is_w_minus_alpha_dw():
    # Deck 000, "Gradient descent weight updates": w = w − α·∂J/∂w for every parameter
    torch.manual_seed(1)
    model = MLP(2, [3], 1, "tanh").double()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(8, 2, dtype=torch.float64), torch.randint(0, 2, (8,))
    head = Head("classification", ["0", "1"], "bce", "sigmoid")
    reduce_loss(head.loss_fn()(model(x), y)).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    torch.optim.SGD(model.parameters(), lr=0.3).step()
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[k] - 0.3 * grads[k])
