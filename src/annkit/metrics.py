"""Evaluation metrics by task, accumulated on the device and read once per evaluation pass.

An evaluation pass feeds every batch's predictions, labels and per-sample losses to a
``*Scores`` accumulator (a few device ops per batch, no host sync); ``compute()`` reads the
sums once and hands them to a pure ``*_report`` function, which holds the formulas:

- classification (confusion matrix C, rows = true class, columns = predicted):
  accuracy = Σ_c C_cc / n;  recall_c = C_cc / Σ_j C_cj;  balanced accuracy = mean of recall_c over
  the classes present (scikit-learn's definition).
- multi-label (per label: tp, fp, fn, tn): accuracy_k = (tp + tn) / n;  F1_k = 2tp / (2tp + fp + fn)
  (0 when the label is never present nor predicted, as scikit-learn's zero_division=0);
  accuracy = mean over labels; macro F1 = mean of F1_k; exact match = share of samples with every label right.
- regression (per target): MSE = Σ(ŷ − y)² / n;  MAE = Σ|ŷ − y| / n;  R² = 1 − Σ(ŷ − y)² / Σ(y − ȳ)²;
  reported as the mean over targets (scikit-learn's uniform average).

``loss`` is always the plain (unweighted, unsmoothed) mean per-sample loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

# metrics where higher is better; every other metric (loss, mse, mae) is minimised
MAXIMIZED = {"accuracy", "balanced_accuracy", "macro_f1", "exact_match", "r2"}


class Scores(Protocol):
    def add(self, predictions: torch.Tensor, targets: torch.Tensor, losses: torch.Tensor) -> None: ...
    def compute(self) -> dict[str, Any]: ...


def sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def classification_report(confusion: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class recall and support from a K×K confusion matrix."""
    confusion = np.asarray(confusion, dtype=np.int64)
    support = confusion.sum(axis=1)
    present = support > 0
    recall = np.where(present, np.diag(confusion) / np.maximum(support, 1), np.nan)
    n = int(confusion.sum())
    return {
        "accuracy": float(np.trace(confusion) / n) if n else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "recall": {name: float(r) for name, r in zip(names, recall)},
        "support": {name: int(s) for name, s in zip(names, support)},
        "confusion_matrix": confusion.tolist(),
    }


def multilabel_report(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray, exact: int, names: Sequence[str]
) -> dict[str, Any]:
    """Per-label accuracy and F1, their means, and the exact-match ratio."""
    tp, fp, fn, tn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    accuracy = (tp + tn) / np.maximum(n, 1)
    denominator = 2 * tp + fp + fn
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    samples = int(n[0]) if len(n) else 0
    return {
        "accuracy": float(accuracy.mean()),
        "macro_f1": float(f1.mean()),
        "exact_match": exact / samples if samples else float("nan"),
        "label_accuracy": {name: float(a) for name, a in zip(names, accuracy)},
        "f1": {name: float(f) for name, f in zip(names, f1)},
    }


def regression_report(
    n: int, sse: np.ndarray, sae: np.ndarray, sum_y: np.ndarray, sum_y2: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    """MSE, MAE and R² per target from running sums, and their means over targets."""
    sse, sae, sum_y, sum_y2 = (np.asarray(a, dtype=np.float64) for a in (sse, sae, sum_y, sum_y2))
    sst = np.maximum(sum_y2 - sum_y**2 / n, 0.0)  # Σ(y − ȳ)²
    # constant targets (sst = 0): R² is 1 for a perfect fit, else 0 (scikit-learn's convention)
    r2 = np.where(sst > 0, 1 - sse / np.where(sst > 0, sst, 1.0), np.where(sse == 0, 1.0, 0.0))
    report: dict[str, Any] = {"mse": float((sse / n).mean()), "mae": float((sae / n).mean()), "r2": float(r2.mean())}
    if len(names) > 1:
        report["per_target"] = {
            name: {"mse": float(a / n), "mae": float(b / n), "r2": float(c)}
            for name, a, b, c in zip(names, sse, sae, r2)
        }
    return report


class _LossSum:
    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), dtype=sum_dtype(device), device=device)
        self.n = 0

    def _add_loss(self, losses: torch.Tensor) -> None:
        self.loss_sum.add_(losses.sum())
        self.n += losses.shape[0]


class ClassificationScores(_LossSum):
    """Confusion matrix and loss sum over the batches of one evaluation."""

    def __init__(self, names: Sequence[str], device: torch.device) -> None:
        super().__init__(device)
        self.names, self.k = tuple(names), len(names)
        self.confusion = torch.zeros(self.k * self.k, dtype=torch.int64, device=device)

    def add(self, predictions: torch.Tensor, targets: torch.Tensor, losses: torch.Tensor) -> None:
        self.confusion.add_(torch.bincount(targets * self.k + predictions, minlength=self.k * self.k))
        self._add_loss(losses)

    def compute(self) -> dict[str, Any]:
        confusion = self.confusion.view(self.k, self.k).cpu().numpy()  # the one host read
        return {"loss": self.loss_sum.item() / self.n, **classification_report(confusion, self.names)}


class MultilabelScores(_LossSum):
    """Per-label tp/fp/fn/tn counts, exact matches and loss sum."""

    def __init__(self, names: Sequence[str], device: torch.device) -> None:
        super().__init__(device)
        self.names = tuple(names)
        self.counts = torch.zeros(4, len(names), dtype=torch.int64, device=device)  # tp, fp, fn, tn
        self.exact = torch.zeros((), dtype=torch.int64, device=device)

    def add(self, predictions: torch.Tensor, targets: torch.Tensor, losses: torch.Tensor) -> None:
        truth = targets > 0.5
        pairs = torch.stack([predictions & truth, predictions & ~truth, ~predictions & truth, ~predictions & ~truth])
        self.counts.add_(pairs.sum(dim=1))
        self.exact.add_((predictions == truth).all(dim=1).sum())
        self._add_loss(losses)

    def compute(self) -> dict[str, Any]:
        tp, fp, fn, tn = self.counts.cpu().numpy()
        return {"loss": self.loss_sum.item() / self.n, **multilabel_report(tp, fp, fn, tn, int(self.exact), self.names)}


class RegressionScores(_LossSum):
    """Σ(ŷ − y)², Σ|ŷ − y|, Σy, Σy² per target, in float64 (float32 on MPS)."""

    def __init__(self, names: Sequence[str], device: torch.device) -> None:
        super().__init__(device)
        self.names = tuple(names)
        self.sums = torch.zeros(4, len(names), dtype=sum_dtype(device), device=device)

    def add(self, predictions: torch.Tensor, targets: torch.Tensor, losses: torch.Tensor) -> None:
        err = predictions.to(self.sums.dtype) - targets
        y = targets.to(self.sums.dtype)
        self.sums.add_(torch.stack([err.square().sum(0), err.abs().sum(0), y.sum(0), y.square().sum(0)]))
        self._add_loss(losses)

    def compute(self) -> dict[str, Any]:
        sse, sae, sum_y, sum_y2 = self.sums.cpu().numpy()
        return {"loss": self.loss_sum.item() / self.n, **regression_report(self.n, sse, sae, sum_y, sum_y2, self.names)}


def scalars(report: dict[str, Any]) -> dict[str, float]:
    """The report's numbers, flat: top-level ones by name (``accuracy``) and per-class / per-label /
    per-target ones as ``recall/<class>``, ``f1/<label>``, ``r2/<target>`` (the confusion matrix and
    supports are left out). These become the ``val/…`` columns of the history and TensorBoard tags."""
    out: dict[str, float] = {}
    for key, value in report.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
        elif key in ("recall", "label_accuracy", "f1"):
            out.update({f"{key}/{name}": float(v) for name, v in value.items()})
        elif key == "per_target":
            out.update({f"{metric}/{name}": float(v) for name, row in value.items() for metric, v in row.items()})
    return out


def metric_mode(name: str) -> str:
    """'max' for metrics where higher is better (accuracy, balanced_accuracy, r2, …), else 'min'."""
    return "max" if name.rsplit("/", 1)[-1] in MAXIMIZED else "min"


def confusion_markdown(confusion: Sequence[Sequence[int]], names: Sequence[str]) -> str:
    """A confusion matrix as a markdown table (rows: true class, columns: predicted)."""
    head = "| true \\ predicted | " + " | ".join(names) + " |"
    rule = "|---" * (len(names) + 1) + "|"
    rows = [f"| **{name}** | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(names, confusion)]
    return "\n".join([head, rule, *rows])
