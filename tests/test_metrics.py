"""Metrics by task: hand-computed reports, and the on-device accumulators against direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annkit.head import Head
from annkit.metrics import (
    ClassificationScores,
    RegressionScores,
    classification_report,
    metric_mode,
    multilabel_report,
    regression_report,
    scalars,
)


def test_classification_report_by_hand():
    # rows = true class, columns = predicted; class c has 10, 5, 0 samples (class 2 absent)
    confusion = np.array([[8, 2, 0], [1, 4, 0], [0, 0, 0]])
    r = classification_report(confusion, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(12 / 15)
    assert r["recall"]["a"] == pytest.approx(0.8) and r["recall"]["b"] == pytest.approx(0.8)
    assert np.isnan(r["recall"]["c"])
    assert r["balanced_accuracy"] == pytest.approx(0.8)  # mean recall over the classes present
    assert r["support"] == {"a": 10, "b": 5, "c": 0}
    skew = classification_report(np.array([[90, 0], [10, 0]]), ["many", "few"])
    assert skew["accuracy"] == 0.9 and skew["balanced_accuracy"] == 0.5  # always "many": accurate, not balanced


def test_classification_scores_accumulate_over_batches():
    torch.manual_seed(0)
    y = torch.randint(0, 4, (100,))
    pred = torch.where(torch.rand(100) < 0.7, y, torch.randint(0, 4, (100,)))
    losses = torch.rand(100)
    scores = ClassificationScores("abcd", torch.device("cpu"))
    for i in range(0, 100, 30):
        scores.add(pred[i : i + 30], y[i : i + 30], losses[i : i + 30])
    r = scores.compute()
    expected = np.zeros((4, 4), dtype=int)
    for t, p in zip(y.tolist(), pred.tolist()):
        expected[t, p] += 1
    assert r["confusion_matrix"] == expected.tolist()
    assert r["accuracy"] == pytest.approx((pred == y).float().mean().item())
    assert r["loss"] == pytest.approx(losses.mean().item())
    recalls = [((pred == y) & (y == c)).sum().item() / (y == c).sum().item() for c in range(4)]
    assert r["balanced_accuracy"] == pytest.approx(np.mean(recalls))


def test_multilabel_report_by_hand():
    # label a: tp 3, fp 1, fn 0, tn 6 → acc 0.9, F1 = 6/7;  label b: never true, never predicted → acc 1, F1 0
    r = multilabel_report([3, 0], [1, 0], [0, 0], [6, 10], exact=9, names=["a", "b"])
    assert r["label_accuracy"] == pytest.approx({"a": 0.9, "b": 1.0})
    assert r["f1"] == pytest.approx({"a": 6 / 7, "b": 0.0})
    assert r["accuracy"] == pytest.approx(0.95) and r["macro_f1"] == pytest.approx(3 / 7) and r["exact_match"] == 0.9


def test_multilabel_scores_against_direct_counts():
    torch.manual_seed(1)
    y = (torch.rand(50, 3) < 0.4).float()
    z = torch.randn(50, 3)
    head = Head("multilabel", ["x", "y", "z"], "bce", "sigmoid")
    scores = head.scores(torch.device("cpu"))
    scores.add(head.predict(z), y, head.loss_fn()(z, y))
    r = scores.compute()
    pred, truth = z > 0, y > 0.5
    tp = (pred & truth).sum(0).double()
    f1 = 2 * tp / (2 * tp + (pred & ~truth).sum(0) + (~pred & truth).sum(0))
    assert list(r["f1"].values()) == pytest.approx(f1.tolist())
    assert r["accuracy"] == pytest.approx((pred == truth).float().mean().item())
    assert r["exact_match"] == pytest.approx((pred == truth).all(1).float().mean().item())
    assert head.hits(z, y).item() == pytest.approx((pred == truth).float().mean(1).sum().item())


def test_regression_report_and_scores():
    # R² = 1 − Σ(ŷ − y)² / Σ(y − ȳ)²
    y = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    pred = torch.tensor([[1.5], [2.0], [2.5], [4.0]])
    scores = RegressionScores(["t"], torch.device("cpu"))
    scores.add(pred[:2], y[:2], torch.zeros(2))
    scores.add(pred[2:], y[2:], torch.zeros(2))
    r = scores.compute()
    assert r["mse"] == pytest.approx(0.5 / 4) and r["mae"] == pytest.approx(1.0 / 4)
    assert r["r2"] == pytest.approx(1 - 0.5 / 5.0)  # Σ(y − ȳ)² = 2.25 + 0.25 + 0.25 + 2.25 = 5
    two = regression_report(
        2, np.array([0.0, 2.0]), np.array([0.0, 2.0]), np.array([2.0, 2.0]), np.array([2.0, 4.0]), ["p", "q"]
    )
    assert two["per_target"]["p"]["r2"] == 1.0  # constant target fitted exactly: 1 (scikit-learn's convention)
    assert two["per_target"]["q"]["r2"] == pytest.approx(1 - 2.0 / 2.0) and two["r2"] == pytest.approx(0.5)


def test_scalars_flatten_per_class_numbers_and_modes():
    r = classification_report(np.array([[1, 0], [0, 1]]), ["T-shirt/top", "Bag"])
    flat = scalars({"loss": 0.1, **r})
    assert flat["recall/T-shirt/top"] == 1.0 and flat["accuracy"] == 1.0 and "confusion_matrix" not in flat
    assert metric_mode("val/balanced_accuracy") == "max" and metric_mode("val/r2") == "max"
    assert metric_mode("val/mae") == "min" and metric_mode("val/loss") == "min"
