"""What the network's outputs mean: the task, the output activation, the loss and the predictions.

The network ends in a linear layer producing raw outputs z (logits). The head turns them into
what the task needs, and the rules are the course's:

| task | loss | outputs | output activation | prediction |
|---|---|---|---|---|
| classification, K classes | ce | K | softmax (inside the loss) | argmax |
| classification, 2 classes | bce | 1 | sigmoid (inside the loss) | σ(z) > 0.5 |
| classification, K > 2 | mse | K | softmax, compared with one-hot targets | argmax |
| classification, 2 classes | mse | 1 | sigmoid, compared with the 0/1 label | ŷ > 0.5 |
| multi-label, K labels | bce or mse | K | sigmoid per label | ŷₖ > 0.5 |
| regression, T targets | mse | T | identity (or sigmoid / tanh if set) | ŷ |

``model.output_activation=auto`` picks the column above; it may be set only where it changes
the maths (mse), since ce and bce work on logits for numerical stability.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from annkit.errors import AnnkitError
from annkit.losses import LossFn, binary_cross_entropy, cross_entropy, squared_error, upcast
from annkit.metrics import ClassificationScores, MultilabelScores, RegressionScores, Scores

ACTIVATE = {
    "identity": lambda z: z,
    "sigmoid": torch.sigmoid,
    "softmax": lambda z: torch.softmax(z, dim=-1),
    "tanh": torch.tanh,
}


class Head:
    """The output side of a model for one task. Built once per run (its tensors live on ``device``)."""

    def __init__(
        self,
        task: str,
        names: Sequence[str],
        loss: str,
        output: str,
        *,
        label_smoothing: float = 0.0,
        pos_weight: float | Sequence[float] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.task, self.names, self.loss, self.output = task, tuple(names), loss, output
        self.label_smoothing = label_smoothing
        weights = [pos_weight] if isinstance(pos_weight, (int, float)) else pos_weight
        self.pos_weight = None if weights is None else torch.tensor(list(weights), dtype=torch.float32, device=device)
        self._activate = ACTIVATE[output]

    def spec(self) -> dict[str, Any]:
        """The constructor's arguments, as a checkpoint stores them (``Head(**spec, device=…)`` builds it again)."""
        weights = None if self.pos_weight is None else self.pos_weight.tolist()
        return {"task": self.task, "names": list(self.names), "loss": self.loss, "output": self.output,
                "label_smoothing": float(self.label_smoothing), "pos_weight": weights}  # fmt: skip

    @property
    def k(self) -> int:
        """Classes (classification), labels (multi-label) or targets (regression)."""
        return len(self.names)

    @property
    def outputs(self) -> int:
        """Width of the network's last layer."""
        return output_width(self.task, self.k, self.loss)

    @property
    def single_output(self) -> bool:
        """Binary classification with bce or mse: one sigmoid output, as the slides' logistic neuron."""
        return self.task == "classification" and self.outputs == 1

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """Raw outputs B×outputs → ŷ: probabilities (classification, multi-label) or values (regression)."""
        return self._activate(upcast(z))

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Labels as the loss compares them: B×1 0/1 (single output), B×K one-hot (mse), or as stored."""
        if self.task != "classification":
            return y
        if self.single_output:
            return y.to(torch.float32).unsqueeze(1)
        return F.one_hot(y, self.k).to(torch.float32)

    def loss_fn(self, *, train: bool = True) -> LossFn:
        """(z, y) → per-sample loss ℓᵢ. ``train=False``: without label smoothing (validation, test)."""
        if self.loss == "ce":
            return partial(cross_entropy, label_smoothing=self.label_smoothing if train else 0.0)
        if self.loss == "bce":
            return lambda z, y: binary_cross_entropy(z, self.targets(y), pos_weight=self.pos_weight)
        return lambda z, y: squared_error(self.activate(z), self.targets(y))

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        """Class indices (B), 0/1 per label (B×K, bool) or values (B×T)."""
        if self.task == "classification":
            if self.single_output:
                return (self.activate(z)[:, 0] > 0.5).long()
            return z.argmax(dim=1)
        if self.task == "multilabel":
            return self.activate(z) > 0.5
        return self.activate(z)

    def hits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Σ correct over the batch (multi-label: Σ per-sample share of right labels); None for regression."""
        if self.task == "classification":
            return (self.predict(z) == y).sum()
        if self.task == "multilabel":
            return (self.predict(z) == (y > 0.5)).float().mean(dim=1).sum()
        return None

    def scores(self, device: torch.device) -> Scores:
        """A fresh on-device accumulator of this task's evaluation metrics."""
        if self.task == "classification":
            return ClassificationScores(self.names, device)
        if self.task == "multilabel":
            return MultilabelScores(self.names, device)
        return RegressionScores(self.names, device)

    def describe(self) -> str:
        """For the run header, e.g. '1 output → sigmoid'."""
        return f"{self.outputs} output{'s' if self.outputs > 1 else ''} → {self.output}"


def output_width(task: str, k: int, loss: str) -> int:
    """One output for two classes with bce or mse (the logistic neuron), else one per class, label or target."""
    return 1 if task == "classification" and k == 2 and loss != "ce" else k


def default_output(task: str, loss: str, k: int) -> str:
    """The output activation ``auto`` stands for (see the module's table)."""
    if loss == "ce":
        return "softmax"
    if loss == "bce" or task == "multilabel" or (task == "classification" and k == 2):
        return "sigmoid"
    return "identity" if task == "regression" else "softmax"


def check_task_and_loss(task: str, k: int, loss: str, output: str, dataset: str) -> str:
    """The output activation to use; an AnnkitError when the loss cannot serve the task."""
    if task == "regression" and loss != "mse":
        raise AnnkitError(
            f"loss={loss} needs class labels, but dataset {dataset} has regression targets (numbers to predict). "
            f"Use loss=mse (squared error), or, if the numbers are really class labels, dataset.task=classification."
        )
    if task == "multilabel" and loss == "ce":
        raise AnnkitError(
            f"loss=ce is for single-label classes (softmax makes the {k} probabilities compete and sum to 1), but "
            f"dataset {dataset} has multi-hot targets ({k} labels that can be on together). Use loss=bce: one "
            f"sigmoid and one binary cross-entropy per label."
        )
    if task == "classification" and loss == "bce" and k > 2:
        raise AnnkitError(
            f"loss=bce on {k}-class single-label targets: binary cross-entropy scores one yes/no output per class "
            f"independently, so the model is never told that exactly one class is right. Use loss=ce (softmax + "
            f"cross-entropy), the loss for one label out of {k} classes; bce is for 2 classes (one sigmoid output) "
            f"or multi-label targets."
        )
    auto = default_output(task, loss, k)
    if output == "auto":
        return auto
    if loss in ("ce", "bce") and output != auto:
        raise AnnkitError(
            f"model.output_activation={output} cannot be used with loss={loss}: {loss} applies {auto} to the logits "
            f"itself (a numerically stable log-{auto}). Leave model.output_activation=auto, or use loss=mse to "
            f"compare {output} outputs with the targets."
        )
    if output == "softmax" and output_width(task, k, loss) == 1:
        raise AnnkitError(
            "model.output_activation=softmax over a single output is the constant 1, so the model could never "
            "learn. Use sigmoid (one output in (0, 1)), identity or tanh, or leave it on auto."
        )
    return output
