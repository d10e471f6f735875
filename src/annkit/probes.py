"""What each unit of a network computes, and how healthy each layer is: read off with forward hooks, on the device.

A dense layer i of :class:`~annkit.models.MLP` computes z = W·a + b (then the norm, when there is one) and its
units' outputs a = g(z). :func:`layer_values` runs one forward pass in eval mode and returns, per hidden layer, the
activation's input z (after the norm: what g sees) and its output g(z), plus the logits.

Layer health (:func:`layer_health`), per hidden layer, on a fixed batch, as device tensors (no host sync here):

- **dead** (ReLU family: relu, leaky_relu, prelu, elu, gelu, silu, softplus): the share of the layer's units whose
  z is never positive on the batch. A dead ReLU unit outputs 0 for every input, so no gradient reaches its weights
  and it never comes back (the leaky ones pass only a·z).
- **saturated** (sigmoid, tanh): the share of the layer's units whose z is in a flat tail for every input of the
  batch, |z| > 2.5 for tanh and |z| > 5 for sigmoid — the same place on the curve, since σ(z) = (1 + tanh(z/2)) / 2:
  the slope there is under 3 % of its peak (tanh′(2.5) = 0.027 of 1, σ′(5) = 0.0066 of 0.25), so almost no gradient
  passes for any input, and the unit is as stuck as a dead ReLU. (A unit of a sharp boundary sits in its tails for
  most inputs; it is not saturated while the inputs near its line still move it.)
- **mean activation**: the mean of g(z) over the batch and the units.

:func:`grad_norms`: per dense layer (the head last), the L2 norm of its weight's and bias's gradients together,
‖(∂L/∂W, ∂L/∂b)‖₂, as one device tensor.

:func:`strongest`: which units a picture shows when a layer has more than it can draw — the documented order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from annkit.models import MLP, activation_name, eval_mode

DEAD_FAMILY = ("relu", "leaky_relu", "prelu", "elu", "gelu", "silu", "swish", "softplus")
SATURATION_Z = {"tanh": 2.5, "sigmoid": 5.0}  # |z| beyond which the unit sits in its flat tail
HEALTH = ("dead", "saturated", "mean_activation")  # the columns of layer_health's rows


@dataclass
class LayerValues:
    """One hidden layer's values on a batch: ``pre`` N×units (z, what the activation sees) and ``post`` N×units
    (g(z), the units' outputs)."""

    pre: torch.Tensor
    post: torch.Tensor


def _activation_module(block: Sequence[nn.Module]) -> nn.Module:
    """The activation of a hidden block [Linear, (norm), activation, (dropout)]."""
    skip = (nn.Linear, nn.BatchNorm1d, nn.LayerNorm, nn.Dropout)
    return next(m for m in block[1:] if not isinstance(m, skip))


@torch.no_grad()
def layer_values(model: MLP, x: torch.Tensor) -> tuple[list[LayerValues], torch.Tensor]:
    """(per hidden layer its z and g(z), the logits) of prepared inputs ``x``: one forward pass in eval mode."""
    blocks = model.dense_layers()[:-1]
    seen: list[LayerValues | None] = [None] * len(blocks)

    def keep(i: int):
        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            seen[i] = LayerValues(inputs[0].detach().flatten(1), out.detach().flatten(1))

        return hook

    handles = [_activation_module(block).register_forward_hook(keep(i)) for i, block in enumerate(blocks)]
    try:
        with eval_mode(model):
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    assert all(v is not None for v in seen)
    return seen, logits.detach()  # type: ignore[return-value]


def layer_health(values: Sequence[LayerValues], activation: str) -> torch.Tensor:
    """L×3 device tensor: per hidden layer its dead share, saturated share and mean activation (see the module's
    docstring); NaN where a measure does not apply to ``activation`` (dead: ReLU family; saturated: sigmoid, tanh)."""
    rows = []
    threshold = SATURATION_Z.get(activation)
    for v in values:
        pre = v.pre.float()
        nan = torch.full((), math.nan, device=pre.device)
        dead = (pre.amax(dim=0) <= 0).float().mean() if activation in DEAD_FAMILY else nan
        saturated = (pre.abs() > threshold).all(dim=0).float().mean() if threshold is not None else nan
        rows.append(torch.stack([dead, saturated, v.post.float().mean()]))
    return torch.stack(rows) if rows else torch.zeros(0, len(HEALTH))


def grad_norms(model: MLP) -> torch.Tensor:
    """Per dense layer (the head last), ‖(∂L/∂W, ∂L/∂b)‖₂ of the gradients the last backward pass left (0 for a
    layer without gradients, e.g. a frozen one): one device tensor, no host sync."""
    norms = []
    device = next(model.parameters()).device
    for block in model.dense_layers():
        linear = block[0]
        grads = [p.grad for p in (linear.weight, linear.bias) if p is not None and p.grad is not None]
        if grads:
            norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
        else:
            norms.append(torch.zeros((), device=device))
    return torch.stack(norms)


def activation_of(model: MLP) -> str:
    """The name of the hidden layers' activation (``{name: leaky_relu, …}`` → ``leaky_relu``)."""
    return activation_name(model.spec["activation"])


def strongest(outgoing: torch.Tensor, n: int) -> list[int]:
    """Which of a layer's units a picture shows when it can show ``n``: the ``n`` units with the largest outgoing
    weight norm ‖W_next[:, j]‖₂ (the ones the next layer listens to most; ties: the lower index first), in unit
    order. ``outgoing``: the next layer's weight, out×units."""
    units = outgoing.shape[1]
    if units <= n:
        return list(range(units))
    norms = torch.linalg.vector_norm(outgoing.detach().float(), dim=0).cpu()
    order = sorted(range(units), key=lambda j: (-float(norms[j]), j))
    return sorted(order[:n])


def by_norm(weight: torch.Tensor, n: int) -> list[int]:
    """The first layer's units in the order the weight grid shows them: by the L2 norm of their weight row
    ‖W[j, :]‖₂, largest first (ties: the lower index first), at most ``n``."""
    norms = torch.linalg.vector_norm(weight.detach().float(), dim=1).cpu()
    return sorted(range(weight.shape[0]), key=lambda j: (-float(norms[j]), j))[:n]
