"""Networks built from config: the multilayer perceptron and its parts.

``MLP(in, hidden, out, activation, dropout, norm)``: for each width in ``hidden`` a fully
connected layer z = W·a + b, an optional normalisation, the activation g(z) and optional
dropout; then a linear head producing one logit per class. ``hidden=[]`` is softmax
(multinomial logistic) regression. Weights use PyTorch's default initialisation
(Kaiming-uniform with a = √5, biases U(±1/√fan_in)).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from annkit.errors import AnnkitError, did_you_mean, unknown_name
from annkit.schema import NORM_NAMES


class Heaviside(nn.Module):
    """The step function of the first artificial neurons: H(z) = 1 if z ≥ 0 else 0.

    Its derivative is 0 wherever it exists (and undefined at z = 0), so backpropagation passes no
    gradient through it: the output is a comparison, cut off from autograd's graph."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z >= 0).to(z.dtype)


class Sign(nn.Module):
    """sign(z) = −1 if z < 0, 0 if z = 0, +1 if z > 0 (torch.sign). Like the step, it has zero
    gradient almost everywhere, so no gradient passes through it (the output is detached)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sign(z).detach()


# name → module class; `model.activation` picks one by name, with keyword arguments when it is
# a mapping, e.g. {name: leaky_relu, negative_slope: 0.1}. Formulas (z = the neuron's weighted sum):
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,  # z (a linear "activation")
    "linear": nn.Identity,  # alias of identity
    "heaviside": Heaviside,  # 1 if z ≥ 0 else 0: zero gradient
    "step": Heaviside,  # alias of heaviside
    "sign": Sign,  # −1, 0, +1: zero gradient
    "sigmoid": nn.Sigmoid,  # σ(z) = 1 / (1 + e^−z);  σ' = σ(1 − σ)
    "tanh": nn.Tanh,  # (e^z − e^−z) / (e^z + e^−z);  tanh' = 1 − tanh²
    "relu": nn.ReLU,  # max(0, z);  1 for z > 0, 0 for z < 0 (0 at z = 0)
    "leaky_relu": nn.LeakyReLU,  # z if z ≥ 0 else a·z (a = negative_slope, default 0.01)
    "prelu": nn.PReLU,  # z if z ≥ 0 else a·z with a learnt (init 0.25; num_parameters: 1 or the width)
    "silu": nn.SiLU,  # z·σ(z);  σ(z)·(1 + z·(1 − σ(z)))
    "swish": nn.SiLU,  # alias of silu
    "softplus": nn.Softplus,  # (1/β)·log(1 + e^{βz}) (beta, default 1);  σ(βz)
    "elu": nn.ELU,  # z if z > 0 else α(e^z − 1) (alpha, default 1)
    "gelu": nn.GELU,  # z·Φ(z), Φ the standard normal CDF (approximate: 'none' | 'tanh')
}
# Activations through which no gradient flows: training warns that the layers before them cannot learn.
ZERO_GRADIENT = (Heaviside, Sign)
# The output layer's activation, applied to the network's raw outputs by the loss and for predictions
# (ce applies softmax and bce sigmoid inside the loss, on the logits, for numerical stability).

NORMS: dict[str, type[nn.Module] | None] = {
    "none": None,
    "batch": nn.BatchNorm1d,
    "layer": nn.LayerNorm,
}
assert tuple(NORMS) == NORM_NAMES  # the schema's names are these


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
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise unknown_name(
            "activation", name, ACTIVATIONS, "Set one with model.activation=<name>, e.g. model.activation=tanh."
        )
    cls = ACTIVATIONS[name]
    try:
        return cls(**kwargs)
    except TypeError as err:
        valid = [p for p in inspect.signature(cls).parameters if p not in ("self", "inplace", "device", "dtype")]
        bad = sorted(k for k in kwargs if k not in valid)
        raise AnnkitError(
            f"model.activation: {name} does not take the argument(s) {', '.join(bad) or sorted(kwargs)} ({err})."
            f"{did_you_mean(bad[0], valid) if bad else ''} Its parameters are: {', '.join(valid) or 'none'}. "
            f"Write e.g. model.activation='{{name: {name}{', ' + valid[0] + ': …' if valid else ''}}}'."
        ) from None


def describe_model(spec: Mapping[str, Any]) -> str:
    """The one description of a network, from its constructor's arguments (:attr:`MLP.spec`):
    'MLP 784 → 1024 → 10 (relu, batch norm, dropout 0.2)' or 'linear 2 → 1 (logistic regression)'."""
    widths = " → ".join(str(w) for w in [spec["in_features"], *spec["hidden"], spec["out_features"]])
    if not spec["hidden"]:
        return f"linear {widths} ({'logistic' if spec['out_features'] == 1 else 'softmax'} regression)"
    extras = [activation_name(spec["activation"])]
    if spec["norm"] != "none":
        extras.append(f"{spec['norm']} norm")
    if spec["dropout"]:
        extras.append(f"dropout {spec['dropout']:g}")
    return f"MLP {widths} ({', '.join(extras)})"


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode (dropout off, batch norm's running statistics) for the block, then back in the mode
    it was in, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


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
        # the constructor's arguments, as a checkpoint stores them (MLP(**spec) builds this network again)
        self.spec: dict[str, Any] = {
            "in_features": int(in_features), "hidden": [int(h) for h in hidden], "out_features": int(out_features),
            "activation": activation if isinstance(activation, str) else dict(activation), "dropout": float(dropout),
            "norm": norm, "input_dropout": float(input_dropout),
        }  # fmt: skip
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
        self.frozen: list[int] = []  # dense layers kept fixed (see freeze)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B×… (flattened to B×in_features) → logits B×out_features."""
        return self.layers(x)

    def dense_layers(self) -> list[list[nn.Module]]:
        """The network as dense layers 0 … L: each hidden Linear with the norm, activation and dropout
        after it, then the output Linear (layer L, the head)."""
        blocks: list[list[nn.Module]] = []
        for module in self.layers:
            if isinstance(module, nn.Linear):
                blocks.append([module])
            elif blocks:
                blocks[-1].append(module)
        return blocks

    def head_prefix(self) -> str:
        """The state_dict prefix of the output layer, e.g. ``layers.4.``."""
        return f"layers.{len(self.layers) - 1}."

    def freeze(self, indices: Sequence[int]) -> None:
        """Keep dense layers ``indices`` fixed: no gradients for their weights, biases, norm and
        activation parameters, and their batch-norm statistics frozen too (kept in eval mode, as
        Keras does for a non-trainable BatchNormalization)."""
        blocks = self.dense_layers()
        self.frozen = sorted({i % len(blocks) for i in indices})
        for i in self.frozen:
            for module in blocks[i]:
                module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> MLP:
        super().train(mode)
        blocks = self.dense_layers()
        for i in self.frozen:
            for module in blocks[i]:
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    frozen: bool = False  # it has parameters and none of them trains


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
                own = list(mod.parameters(recurse=False))
                frozen = bool(own) and not any(p.requires_grad for p in own)
                rows.append(
                    LayerRow(name, type(mod).__name__, tuple(out.shape[1:]), sum(p.numel() for p in own), frozen)
                )

            hooks.append(module.register_forward_hook(hook))
    device = next(model.parameters()).device
    try:
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(2, *input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
    return rows


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
