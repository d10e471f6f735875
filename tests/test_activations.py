"""The activation catalogue: values and derivatives against their closed forms (the slides' formulas),
and the step-like activations that pass no gradient."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from annkit.errors import AnnkitError
from annkit.loop import train_step
from annkit.losses import binary_cross_entropy
from annkit.models import ACTIVATIONS, MLP, make_activation

Z = torch.tensor([-3.0, -1.5, -0.2, 0.3, 1.0, 2.5], dtype=torch.float64)


def derivative(spec, z: torch.Tensor = Z) -> tuple[torch.Tensor, torch.Tensor]:
    """(g(z), g'(z)) by autograd, element by element."""
    z = z.clone().requires_grad_(True)
    out = make_activation(spec).double()(z)
    (grad,) = torch.autograd.grad(out.sum(), z)
    return out.detach(), grad


def sigma(z: torch.Tensor) -> torch.Tensor:
    return 1 / (1 + torch.exp(-z))


def test_sigmoid_table_from_the_slides():
    # Deck 003 ("Sigmoid Function"): z = −2 … 2 → σ(z) = 0.12, 0.18, 0.27, 0.38, 0.50, 0.62, 0.73, 0.82, 0.88
    z = torch.tensor([-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2])
    values = make_activation("sigmoid")(z)
    assert [round(v, 2) for v in values.tolist()] == [0.12, 0.18, 0.27, 0.38, 0.50, 0.62, 0.73, 0.82, 0.88]


# (spec, g(z), g'(z)) — closed forms of deck 003 (sigmoid, tanh, ReLU, leaky ReLU) and deck 002
# (PReLU, SiLU, SoftPlus); ELU and GELU from their papers. z avoids 0, where ReLU-like kinks are.
CLOSED_FORMS = [
    ("identity", lambda z: z, lambda z: torch.ones_like(z)),
    ("linear", lambda z: z, lambda z: torch.ones_like(z)),
    ("sigmoid", sigma, lambda z: sigma(z) * (1 - sigma(z))),  # σ' = σ(1 − σ)
    ("tanh", torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),  # tanh' = 1 − tanh²
    ("relu", lambda z: z.clamp(min=0), lambda z: (z > 0).double()),  # 1 for z > 0, 0 for z < 0
    ("leaky_relu", lambda z: torch.where(z >= 0, z, 0.01 * z), lambda z: torch.where(z >= 0, 1.0, 0.01).double()),
    (
        {"name": "leaky_relu", "negative_slope": 0.2},
        lambda z: torch.where(z >= 0, z, 0.2 * z),
        lambda z: torch.where(z >= 0, 1.0, 0.2).double(),
    ),
    (
        "prelu",
        lambda z: torch.where(z >= 0, z, 0.25 * z),
        lambda z: torch.where(z >= 0, 1.0, 0.25).double(),
    ),  # a = 0.25 at init
    ("silu", lambda z: z * sigma(z), lambda z: sigma(z) * (1 + z * (1 - sigma(z)))),  # (z·σ)' = σ + z·σ(1 − σ)
    ("swish", lambda z: z * sigma(z), lambda z: sigma(z) * (1 + z * (1 - sigma(z)))),
    ("softplus", lambda z: torch.log1p(torch.exp(z)), sigma),  # log(1 + e^z)' = σ(z)
    (
        {"name": "softplus", "beta": 2.0},
        lambda z: torch.log1p(torch.exp(2 * z)) / 2,
        lambda z: sigma(2 * z),
    ),  # (1/β)log(1+e^{βz})
    (
        "elu",
        lambda z: torch.where(z > 0, z, torch.exp(z) - 1),
        lambda z: torch.where(z > 0, torch.ones_like(z), torch.exp(z)),
    ),
    (
        "gelu",
        lambda z: z * 0.5 * (1 + torch.erf(z / math.sqrt(2))),  # z·Φ(z); (zΦ)' = Φ(z) + z·φ(z)
        lambda z: 0.5 * (1 + torch.erf(z / math.sqrt(2))) + z * torch.exp(-(z**2) / 2) / math.sqrt(2 * math.pi),
    ),
]


@pytest.mark.parametrize("spec,g,dg", CLOSED_FORMS, ids=lambda v: str(v) if not callable(v) else "")
def test_value_and_derivative_equal_the_closed_form(spec, g, dg):
    value, grad = derivative(spec)
    torch.testing.assert_close(value, g(Z), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, dg(Z), rtol=1e-7, atol=1e-12)  # torch keeps the leaky slope in float32


def test_prelu_learns_its_slope():
    # PReLU(z) = z if z ≥ 0 else a·z: ∂/∂a = z for z < 0, 0 otherwise (deck 002, "Parametric ReLU")
    act = make_activation({"name": "prelu", "init": 0.1}).double()
    act(Z).sum().backward()
    assert act.weight.grad.item() == pytest.approx(Z[Z < 0].sum().item())


def test_step_and_sign_values():
    z = torch.tensor([-2.0, -0.0, 0.0, 1e-6, 3.0])
    assert make_activation("heaviside")(z).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]  # 1 if z ≥ 0 else 0
    assert make_activation("step")(z).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert make_activation("sign")(z).tolist() == [-1.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("name", ["heaviside", "sign"])
def test_step_like_activations_pass_no_gradient(name):
    z = torch.randn(5, requires_grad=True)
    assert not make_activation(name)(z).requires_grad  # the derivative is 0 wherever it exists


def test_a_step_hidden_layer_never_changes_only_the_head_learns():
    """What the training warning promises: gradient descent cannot move the layers before a step."""
    torch.manual_seed(0)
    model = MLP(2, [4], 1, "heaviside")
    first, head = model.layers[1], model.layers[3]
    w1, w2 = first.weight.detach().clone(), head.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, weight_decay=0.1)
    x, y = torch.randn(16, 2), torch.randint(0, 2, (16, 1)).float()
    for _ in range(3):
        train_step(model, opt, x, y, loss_fn=binary_cross_entropy)
    assert torch.equal(first.weight, w1) and first.weight.grad is None
    assert not torch.equal(head.weight, w2)


def test_every_catalogued_name_builds_and_runs():
    assert set(ACTIVATIONS) >= {
        "identity",
        "linear",
        "heaviside",
        "step",
        "sign",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "prelu",
        "silu",
        "swish",
        "softplus",
        "elu",
        "gelu",
    }
    for name in ACTIVATIONS:
        assert make_activation(name)(torch.zeros(2, 3)).shape == (2, 3)


def test_unknown_activation_parameter_names_the_valid_ones():
    with pytest.raises(AnnkitError) as err:
        make_activation({"name": "softplus", "betta": 2})
    msg = str(err.value)
    assert "softplus does not take the argument(s) betta" in msg and 'Did you mean "beta"?' in msg
    assert "Its parameters are: beta, threshold" in msg


def test_mlp_keeps_one_module_per_layer_for_learnt_activations():
    model = MLP(3, [4, 4], 2, {"name": "prelu", "num_parameters": 4})
    slopes = [m for m in model.layers if isinstance(m, nn.PReLU)]
    assert len(slopes) == 2 and slopes[0].weight is not slopes[1].weight and slopes[0].weight.shape == (4,)
