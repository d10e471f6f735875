"""Networks built from config: the multilayer perceptron and its parts.

``MLP(in, hidden, out, activation, dropout, norm)``: for each width in ``hidden`` a fully
connected layer z = W·a + b, an optional normalisation, the activation g(z) and optional
dropout; then a linear head producing one logit per class. ``hidden=[]`` is softmax
(multinomial logistic) regression. Weights use PyTorch's default initialisation
(Kaiming-uniform with a = √5, biases U(±1/√fan_in)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from annkit.errors import AnnkitError, unknown_name

# name → module class; `model.activation` picks one by name, with keyword arguments when it is
# a mapping, e.g. {name: leaky_relu, negative_slope: 0.1}.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,  # max(0, z)
    "leaky_relu": nn.LeakyReLU,  # z if z ≥ 0 else a·z (a = negative_slope, 0.01)
    "tanh": nn.Tanh,  # (e^z − e^−z) / (e^z + e^−z)
    "sigmoid": nn.Sigmoid,  # 1 / (1 + e^−z)
    "gelu": nn.GELU,  # z·Φ(z)
    "silu": nn.SiLU,  # z·σ(z), a.k.a. swish
    "elu": nn.ELU,  # z if z > 0 else α(e^z − 1)
    "identity": nn.Identity,  # z (a linear "activation")
}

NORMS: dict[str, type[nn.Module] | None] = {
    "none": None,
    "batch": nn.BatchNorm1d,
    "layer": nn.LayerNorm,
}


def activation_name(spec: str | Mapping[str, Any]) -> str:
    return spec if isinstance(spec, str) else str(spec.get("name"))


def make_activation(spec: str | Mapping[str, Any]) -> nn.Module:
    """An activation module from ``"relu"`` or ``{"name": "leaky_relu", "negative_slope": 0.1}``."""
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, Mapping) and "name" in spec:
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        name = spec["name"]
    else:
        raise AnnkitError(
            f"model.activation={spec!r} is neither a name nor a mapping with a 'name' key. Use e.g. "
            f"model.activation=tanh or model.activation='{{name: leaky_relu, negative_slope: 0.1}}'."
        )
    if name not in ACTIVATIONS:
        raise unknown_name(
            "activation", name, ACTIVATIONS, "Set one with model.activation=<name>, e.g. model.activation=tanh."
        )
    try:
        return ACTIVATIONS[name](**kwargs)
    except TypeError as err:
        raise AnnkitError(
            f"model.activation: {name} does not take the arguments {sorted(kwargs)} ({err}). "
            f"Give only the keyword arguments of torch.nn.{ACTIVATIONS[name].__name__}."
        ) from None


class MLP(nn.Module):
    """A multilayer perceptron over flattened inputs: in → hidden[0] → … → out logits."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        activation: str | Mapping[str, Any] = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise unknown_name("norm", norm, NORMS, "Set model.norm=none, batch or layer.")
        layers: list[nn.Module] = [nn.Flatten()]
        if input_dropout > 0:
            layers.append(nn.Dropout(input_dropout))
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if NORMS[norm] is not None:
                layers.append(NORMS[norm](h))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B×… (flattened to B×in_features) → logits B×out_features."""
        return self.layers(x)


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


def summarize(model: nn.Module, input_shape: Sequence[int]) -> list[LayerRow]:
    """One row per leaf module: its output shape for one sample and its parameter count.

    Runs one forward pass on zeros of shape 2×input_shape (eval mode, no gradients) with
    forward hooks; the batch dimension is dropped from the reported shapes.
    """
    rows: list[LayerRow] = []
    hooks = []
    for name, module in model.named_modules():
        if len(list(module.children())) == 0:

            def hook(mod: nn.Module, _inp: Any, out: torch.Tensor, name: str = name) -> None:
                params = sum(p.numel() for p in mod.parameters(recurse=False))
                rows.append(LayerRow(name, type(mod).__name__, tuple(out.shape[1:]), params))

            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, *input_shape, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable

