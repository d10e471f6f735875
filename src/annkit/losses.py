"""Losses, weights and penalties: the pieces of the objective that training minimises.

Each loss returns the per-sample loss ℓᵢ (unreduced); :func:`reduce_loss` is the one place where
per-sample losses and weights become the scalar data loss, and :func:`weight_penalty` adds the
L1/L2 terms. With N samples in the batch, weights wᵢ and m training samples in all:

    objective = reduce(ℓ, w) + λ₂/(2m)·Σ W² + λ₁/m·Σ |W|       (W: weight matrices, not biases)

Cross-entropy on logits z (K classes, target class y, label smoothing ε):

    p = softmax(z),  pₖ = e^{zₖ} / Σⱼ e^{zⱼ}
    qₖ = (1 − ε)·[k = y] + ε/K               (ε = 0: the one-hot target)
    ℓ = −Σₖ qₖ log pₖ                          (natural log; nats)

Binary cross-entropy on logits z (one per label, targets t ∈ {0, 1}, positive weight a):

    ℓ = −(1/K) Σₖ [aₖ·tₖ·log σ(zₖ) + (1 − tₖ)·log(1 − σ(zₖ))]

Squared error on outputs ŷ = g(z) (g: the output activation) against targets t (one-hot for classes):

    ℓ = (1/K) Σₖ (ŷₖ − tₖ)²
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[..., torch.Tensor]


def upcast(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast) outputs → float32 for the loss; float32 and float64 stay as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Softmax cross-entropy per sample: logits B×K (any float dtype), target B class indices → B."""
    return F.cross_entropy(upcast(logits), target, reduction="none", label_smoothing=label_smoothing)


def binary_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, *, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Sigmoid + binary cross-entropy per sample: logits and 0/1 targets B×K → B (mean over the K labels).

    ``pos_weight`` (a scalar or K values) multiplies the positive term, as in
    ``torch.nn.BCEWithLogitsLoss``: a > 1 favours recall of the positives."""
    z = upcast(logits)
    weight = None if pos_weight is None else pos_weight.to(z.dtype)
    per_label = F.binary_cross_entropy_with_logits(z, target.to(z.dtype), pos_weight=weight, reduction="none")
    return per_label.mean(dim=1)


def squared_error(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: outputs and targets B×K → B (mean over the K outputs, as Keras)."""
    out = upcast(outputs)
    return (out - target.to(out.dtype)).square().mean(dim=1)


def reduce_loss(per_sample: torch.Tensor, weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """The scalar loss from per-sample losses ℓᵢ and optional weights wᵢ (N samples):

    - ``mean``:          Σᵢ wᵢ·ℓᵢ / N        (Keras's convention; without weights the plain mean)
    - ``weighted_mean``: Σᵢ wᵢ·ℓᵢ / Σᵢ wᵢ    (PyTorch's weighted CrossEntropyLoss convention)
    - ``sum``:           Σᵢ wᵢ·ℓᵢ            (the perceptron rule's: each sample's update in full; not a config value)
    """
    if reduction == "sum":
        return per_sample.sum() if weights is None else (weights * per_sample).sum()
    if weights is None:
        return per_sample.mean()
    total = (weights * per_sample).sum()
    if reduction == "mean":
        return total / per_sample.numel()
    if reduction == "weighted_mean":
        return total / weights.sum()
    raise ValueError(f"reduction must be 'mean' or 'weighted_mean', not {reduction!r}")


def perceptron_criterion(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rosenblatt's perceptron criterion per sample: (ŷ − y)·z with ŷ = [z > 0] the step neuron's output, z its
    weighted sum (B×1) and y the class (B). ŷ is a comparison, constant to autograd, so the gradient is (ŷ − y)·x
    for the weights and (ŷ − y) for the bias: a gradient step of size η is the perceptron rule
    w ← w + η·(y − ŷ)·x, and a sample on the right side (ŷ = y) changes nothing. The criterion is ≥ 0."""
    z = upcast(z)[:, 0]
    return ((z > 0).to(z.dtype) - target.to(z.dtype)) * z


def balanced_class_weights(counts: Sequence[int]) -> list[float]:
    """wᶜ = n / (K · n_c) for class counts n_c (n = Σ n_c, K = the number of classes present): every
    class gets the same total weight, and the weights average to 1 over the samples (scikit-learn's
    "balanced"). A class with no samples gets 0."""
    n, k = sum(counts), sum(1 for c in counts if c)
    return [n / (k * c) if c else 0.0 for c in counts]


def sample_weights(
    labels: torch.Tensor, class_weights: Sequence[float] | None, weights: torch.Tensor | None
) -> torch.Tensor | None:
    """Per-sample training weights: class weight of the sample's class × its own weight (both optional).

    ``labels``: N class indices (ignored without class weights); ``weights``: N or None."""
    if class_weights is None:
        return weights
    per_class = torch.tensor(class_weights, dtype=torch.float32, device=labels.device)
    by_class = per_class.index_select(0, labels)
    return by_class if weights is None else by_class * weights


def penalized_weights(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that L1/L2 regularisation acts on: weight matrices (ndim ≥ 2), not biases,
    normalisation scales or PReLU slopes, as in the slides' Σ_l Σ_i Σ_j (Θ_ji^(l))²."""
    return [p for p in model.parameters() if p.ndim >= 2 and p.requires_grad]


def weight_penalty(weights: Sequence[torch.Tensor], *, l1: float, l2: float, m: int) -> torch.Tensor:
    """λ₂/(2m)·Σ W² + λ₁/m·Σ |W| over ``weights``; m = the number of training samples.

    The L2 term is the slides' regularised cost (deck 004, "Cost Function"): J(Θ) = … + λ/(2m) Σ Θ².
    Dividing by the training-set size m (not the batch size) keeps each minibatch's gradient an
    unbiased estimate of the full cost's."""
    total = torch.zeros((), device=weights[0].device)
    if l2:
        total = total + (l2 / (2 * m)) * torch.stack([w.float().square().sum() for w in weights]).sum()
    if l1:
        total = total + (l1 / m) * torch.stack([w.float().abs().sum() for w in weights]).sum()
    return total
