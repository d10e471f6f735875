"""Shaping the training split for teaching experiments: fewer samples, skewed classes, crowd labels, weights.

Everything here acts on the training split only (validation and test keep the source's
distribution and true labels, so the effect of each knob is measured honestly), on index and
label arrays, once, before the data moves to the device. The steps run in this order:

1. ``limit_train``: keep the first N training samples (in file order);
2. ``class_fraction``: keep a seeded random share f_c of each class c (skewed classes);
3. ``sample_weight``: one weight per row of the training source, from a file (or a CSV column);
4. ``label_noise``: a seeded share of the training samples is labelled by "the crowd": each of
   their labels is replaced, with probability ``error_rate``, by a different class drawn
   uniformly; those samples get the weight ``weight`` (the expert-labelled rest keep 1).
   Weights from 3 and 4 multiply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.errors import AnnkitError


@dataclass
class Shaped:
    idx: np.ndarray  # rows of the training source that form the training split
    labels: np.ndarray  # their (possibly corrupted) targets
    weights: np.ndarray | None  # float32 per-sample weights, or None when all are 1
    notes: list[str]  # what was done, for the run header


def thin_classes(
    idx: np.ndarray, labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Keep round(f_c · n_c) of the n_c training samples of each class c (at least one when f_c > 0),
    chosen at random; the kept indices stay in their original order."""
    keep = np.zeros(len(idx), dtype=bool)
    for c, f in enumerate(fractions):
        members = np.flatnonzero(labels == c)
        n_keep = 0 if f == 0 or len(members) == 0 else max(1, round(f * len(members)))
        keep[rng.choice(members, size=n_keep, replace=False)] = True
    return idx[keep]


def corrupt_labels(
    labels: np.ndarray, k: int, fraction: float, error_rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(new labels, crowd mask): a random ``fraction`` of samples is the crowd's; each crowd label is
    replaced with probability ``error_rate`` by one of the k − 1 other classes, uniformly."""
    n = len(labels)
    crowd = np.zeros(n, dtype=bool)
    crowd[rng.choice(n, size=round(fraction * n), replace=False)] = True
    wrong = crowd & (rng.random(n) < error_rate)
    shift = rng.integers(1, k, size=n)  # 1 … k−1: a different class
    out = labels.copy()
    out[wrong] = (labels[wrong] + shift[wrong]) % k
    return out, crowd


def read_weight_file(path: str | Path, n: int, what: str) -> np.ndarray:
    """Per-sample weights from ``path``: a .npy array or a text file with one number per line
    (a first line that is not a number is taken as a header). Must hold n finite numbers ≥ 0."""
    path = Path(path)
    if not path.is_file():
        raise AnnkitError(
            f"dataset.sample_weight={path}: no such file ({path.resolve()}). Give a .npy file or a text file with one "
            f"weight per line, one for each of the {n} rows of {what}, or set dataset.sample_weight=null."
        )
    try:
        if path.suffix == ".npy":
            weights = np.load(path, allow_pickle=False)
        else:
            lines = [s.strip().split(",")[-1] for s in path.read_text().splitlines() if s.strip()]
            try:
                float(lines[0])
            except (ValueError, IndexError):
                lines = lines[1:]  # a header
            weights = np.array([float(s) for s in lines])
    except ValueError as err:
        raise AnnkitError(
            f"dataset.sample_weight={path}: cannot read a number from it ({err}). Write one weight per line."
        ) from None
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(weights) != n:
        raise AnnkitError(
            f"dataset.sample_weight={path} holds {len(weights)} weights, but {what} has {n} rows: give exactly one "
            f"weight per row, in the file's order (validation rows are included and ignored)."
        )
    check_weights(weights, at=lambda i: f"dataset.sample_weight={path}: the weight at line {i + 1}", source=str(path))
    return weights.astype(np.float32)


def check_weights(weights: np.ndarray, *, at: Callable[[int], str], source: str) -> None:
    """Weights must be finite and ≥ 0, and not all 0. ``at(i)`` names the weight of row i in the
    message ('Line 3 of t.csv: the weight in column "w"'); ``source`` names them all ('column "w" of t.csv')."""
    bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if len(bad):
        i, n = int(bad[0]), len(bad)
        kind = "negative" if np.isfinite(weights[bad]).all() else "negative or non-finite"
        raise AnnkitError(
            f"{at(i)} is {weights[i]:g}; weights must be finite numbers ≥ 0 (0 leaves a row out of the loss, 1 is "
            f"normal, 2 counts it twice). {n} row{'s' if n > 1 else ''} in all {'have' if n > 1 else 'has'} a {kind} "
            f"weight: fix or drop them, and run again."
        )
    if weights.size and not weights.any():
        raise AnnkitError(
            f"Every weight in {source} is 0, so no row would count in the loss. Check that dataset.sample_weight "
            f"names the right column or file, or set it to null for equal weights."
        )


def shape_training_set(
    idx: np.ndarray,
    labels: np.ndarray,
    *,
    task: str,
    k: int,
    limit_train: int | None = None,
    class_fraction: Sequence[float] | None = None,
    label_noise: dict | None = None,
    weights: np.ndarray | None = None,
    rng: np.random.Generator,
) -> Shaped:
    """Apply steps 1–4 of the module docstring. ``idx``: rows of the training source in the
    training split; ``labels``: the targets of *all* rows of the source; ``weights``: one per
    row of the source, or None."""
    notes: list[str] = []
    classification = task == "classification"
    if (class_fraction is not None or (label_noise and label_noise["fraction"] > 0)) and not classification:
        raise AnnkitError(
            f"dataset.class_fraction and dataset.label_noise act on class labels, but this dataset's task is {task}. "
            f"Set dataset.class_fraction=null and dataset.label_noise.fraction=0."
        )
    if limit_train is not None and limit_train < len(idx):
        idx = idx[:limit_train]
        notes.append(f"first {limit_train:,} training samples (dataset.limit_train)")
    if class_fraction is not None:
        if len(class_fraction) != k:
            raise AnnkitError(
                f"dataset.class_fraction has {len(class_fraction)} values, but the dataset has {k} classes: give one "
                f"share in [0, 1] per class, e.g. [1, 1, 0.1, …] keeps 10 % of class 2."
            )
        before = np.bincount(labels[idx], minlength=k)
        idx = thin_classes(idx, labels[idx], class_fraction, rng)
        after = np.bincount(labels[idx], minlength=k)
        if after.sum() < 2:
            raise AnnkitError("dataset.class_fraction leaves fewer than 2 training samples. Keep larger shares.")
        notes.append(
            f"class_fraction kept {after.sum():,} of {before.sum():,} training samples (per class: {', '.join(map(str, after))})"
        )
    y = labels[idx]
    w = None if weights is None else weights[idx].astype(np.float32)
    if label_noise and label_noise["fraction"] > 0:
        y, crowd = corrupt_labels(y, k, label_noise["fraction"], label_noise["error_rate"], rng)
        wrong = int((y != labels[idx]).sum())
        crowd_w = np.where(crowd, np.float32(label_noise["weight"]), np.float32(1.0))
        w = crowd_w if w is None else w * crowd_w
        notes.append(
            f"label_noise: {int(crowd.sum()):,} crowd-labelled samples ({wrong:,} labels wrong), weight {label_noise['weight']:g}"
        )
    return Shaped(idx=idx, labels=y, weights=w, notes=notes)
