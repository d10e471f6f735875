"""MLP structure, parameter counts, activations and the summary."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from annkit.errors import AnnkitError
from annkit.models import ACTIVATIONS, MLP, count_params, make_activation, summarize


def linear_params(widths: list[int]) -> int:
    """Σ over consecutive layers of (fan_in + 1)·fan_out: weights plus one bias per neuron."""
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


@pytest.mark.parametrize(
    "hidden,norm,expected",
    [
        ([1024, 1024], "none", 1_863_690),  # (784+1)·1024 + (1024+1)·1024 + (1024+1)·10
        ([512, 512], "none", 669_706),  # the bench model 784-512-512-10
        ([], "none", 7_850),  # logistic: (784+1)·10
        ([256], "batch", linear_params([784, 256, 10]) + 2 * 256),  # + γ and β per BN unit
    ],
)
def test_parameter_counts(hidden, norm, expected):
    model = MLP(784, hidden, 10, "relu", 0.0, norm)
    assert count_params(model) == (expected, expected)
    assert expected == linear_params([784, *hidden, 10]) + (2 * sum(hidden) if norm != "none" else 0)


def test_shapes_and_layer_order():
    model = MLP(784, [32, 16], 10, "tanh", dropout=0.5, norm="layer")
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == [
        "Flatten",
        "Linear",
        "LayerNorm",
        "Tanh",
        "Dropout",
        "Linear",
        "LayerNorm",
        "Tanh",
        "Dropout",
        "Linear",
    ]
    assert model(torch.zeros(5, 28, 28)).shape == (5, 10)
    rows = summarize(model, (28, 28))
    assert [r.output_shape for r in rows] == [(784,), (32,), (32,), (32,), (32,), (16,), (16,), (16,), (16,), (10,)]
    assert [r.params for r in rows if r.kind == "Linear"] == [785 * 32, 33 * 16, 17 * 10]
    assert model.training  # summarize restores the mode


def test_logistic_is_one_linear_layer():
    model = MLP(784, [], 10)
    assert [type(m).__name__ for m in model.layers] == ["Flatten", "Linear"]
    x = torch.randn(3, 28, 28)
    lin = model.layers[1]
    torch.testing.assert_close(model(x), x.flatten(1) @ lin.weight.T + lin.bias)  # z = W·x + b


@pytest.mark.parametrize(
    "spec,x,expected",
    [
        ("relu", [-2.0, 0.0, 3.0], [0.0, 0.0, 3.0]),  # max(0, z)
        ("tanh", [0.5], [math.tanh(0.5)]),
        ("sigmoid", [-2.0, -1.0, 0.0], [0.1192, 0.2689, 0.5]),  # 1/(1+e^−z): the slides' table
        ("leaky_relu", [-2.0, 1.0], [-0.02, 1.0]),  # default slope 0.01
        ({"name": "leaky_relu", "negative_slope": 0.1}, [-2.0], [-0.2]),
        ("silu", [1.0], [1.0 / (1.0 + math.exp(-1.0))]),  # z·σ(z)
        ("elu", [-1.0], [math.exp(-1.0) - 1.0]),  # α(e^z − 1), α = 1
        ("identity", [-3.0], [-3.0]),
    ],
)
def test_activation_values(spec, x, expected):
    out = make_activation(spec)(torch.tensor(x))
    torch.testing.assert_close(out, torch.tensor(expected), atol=1e-4, rtol=0)


def test_unknown_activation_lists_valid_names():
    with pytest.raises(AnnkitError) as err:
        make_activation("relux")
    msg = str(err.value)
    assert 'Unknown activation "relux"' in msg and 'Did you mean "relu"' in msg
    assert all(name in msg for name in ACTIVATIONS)


def test_bad_activation_argument():
    with pytest.raises(AnnkitError, match="negative_slop"):
        make_activation({"name": "leaky_relu", "negative_slop": 0.1})


def test_each_hidden_layer_gets_its_own_activation_module():
    model = MLP(4, [3, 3], 2, {"name": "leaky_relu", "negative_slope": 0.2})
    acts = [m for m in model.layers if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 2 and acts[0] is not acts[1] and acts[0].negative_slope == 0.2
