"""Loss functions: each returns the per-sample loss ℓᵢ (unreduced); :func:`reduce_loss` is the
one place where per-sample losses become the scalar that is minimised.

Cross-entropy on logits z (K classes, target class y, label smoothing ε):

    p = softmax(z),  pₖ = e^{zₖ} / Σⱼ e^{zⱼ}
    qₖ = (1 − ε)·[k = y] + ε/K               (ε = 0: the one-hot target)
    ℓ = −Σₖ qₖ log pₖ                          (natural log; nats)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from annkit.errors import unknown_name

LossFn = Callable[..., torch.Tensor]


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Softmax cross-entropy per sample: logits B×K (any float dtype), target B class indices → B."""
    return F.cross_entropy(logits.float(), target, reduction="none", label_smoothing=label_smoothing)


LOSSES: dict[str, LossFn] = {
    "ce": cross_entropy,
}


def get_loss(name: str) -> LossFn:
    try:
        return LOSSES[name]
    except KeyError:
        raise unknown_name("loss", name, LOSSES, "Pick one with loss=<name> (see configs/loss/).") from None


def reduce_loss(per_sample: torch.Tensor, weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """The scalar loss from per-sample losses ℓᵢ and optional weights wᵢ (N samples):

    - ``mean``:          Σᵢ wᵢ·ℓᵢ / N        (Keras's convention; without weights the plain mean)
    - ``weighted_mean``: Σᵢ wᵢ·ℓᵢ / Σᵢ wᵢ    (PyTorch's weighted CrossEntropyLoss convention)
    """
    if weights is None:
        return per_sample.mean()
    total = (weights * per_sample).sum()
    if reduction == "mean":
        return total / per_sample.numel()
    if reduction == "weighted_mean":
        return total / weights.sum()
    raise ValueError(f"reduction must be 'mean' or 'weighted_mean', not {reduction!r}")
