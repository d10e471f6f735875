"""What a dataset is, below every loader: :class:`Data` (three :class:`Split` s on one device, the
task, the names, the preprocessing), a 2-D set's :class:`Plane`, the seeded splits of a file's rows
(:func:`split_train_val`, :func:`split_indices`) and the records of the files a run read
(:func:`file_record`, :func:`check_same_file`).

The loaders (:mod:`annkit.data.images`, :mod:`annkit.data.tabular`) and the package itself import
these from here, so no loader imports the package that dispatches to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annkit.commands import shown
from annkit.errors import AnnkitError

__all__ = [
    "Data",
    "Plane",
    "Split",
    "check_same_file",
    "file_record",
    "plane_of",
    "split_indices",
    "split_train_val",
    "table_plane",
]


@dataclass
class Split:
    x: torch.Tensor  # N×… inputs: uint8 images, or float32 features
    y: torch.Tensor  # N int64 class indices | N×K float32 0/1 labels (multilabel) | N×T float32 (regression)
    w: torch.Tensor | None = None  # N float32 per-sample training weights (training split only)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Plane:
    """A 2-D dataset's input plane (TF Playground's picture): where its points lie, and how a point
    of the plane becomes a model input — for decision-boundary images."""

    inputs: Callable[[np.ndarray], np.ndarray]  # G×2 points (x1, x2) → G×F float32 inputs, as the splits hold them
    points: dict[str, np.ndarray]  # split → N×2 coordinates of its samples, in split order
    extent: tuple[float, float, float, float]  # x1 min, x1 max, x2 min, x2 max
    axes: tuple[str, str] = ("x1", "x2")


@dataclass
class Data:
    """A dataset ready to train on: splits on the device plus what the rest of a run needs to know."""

    train: Split
    val: Split
    test: Split
    task: str  # classification | multilabel | regression
    names: tuple[str, ...]  # class names | label names | target names
    prepare: Callable[[torch.Tensor, bool], torch.Tensor]  # (raw batch, train?) → model input
    source: str  # where the data came from (folder, file, generator)
    preprocessing: dict[str, Any]  # JSON-able: how raw inputs become model inputs (for checkpoints)
    notes: list[str] = field(default_factory=list)  # shown in the header: inferred task, thinned classes, …
    plane: Plane | None = None  # 2-D generated data (the playground): its plane, whatever the features
    files: dict[str, dict[str, str]] = field(
        default_factory=dict
    )  # config key → {path, sha256} of each file read (CSV)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.names)


def table_plane(splits: Mapping[str, torch.Tensor], axes: tuple[str, str]) -> Plane:
    """The plane of a table with two input columns: the columns themselves, 10 % margin around the data."""
    points = {name: x.detach().float().cpu().numpy() for name, x in splits.items()}
    every = np.concatenate(list(points.values()))
    lo, hi = every.min(axis=0), every.max(axis=0)
    pad = np.maximum((hi - lo) * 0.1, 0.5)
    return Plane(
        lambda g: g.astype(np.float32),
        points,
        (float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])),
        axes,
    )


def plane_of(data: Data) -> Plane | None:
    """The plane a 2-D dataset's pictures cover: the playground's own, or a two-column table's columns (the
    training and test points, 10 % margin); None for other data."""
    if data.plane is not None:
        return data.plane
    if data.input_shape == (2,) and data.task != "multilabel":
        names = data.preprocessing.get("features") or ["x1", "x2"]
        return table_plane({"train": data.train.x, "test": data.test.x}, (str(names[0]), str(names[1])))
    return None


def file_record(path: str | Path) -> dict[str, str]:
    """``{"path": absolute path, "sha256": hex digest}`` of a data file, for a run's records: a moved
    file is recognised by its content (:func:`check_same_file`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(Path(path).absolute()), "sha256": digest.hexdigest()}


def check_same_file(key: str, path: str, recorded: dict[str, str], what: str) -> None:
    """``path`` (given for ``key``) must hold the bytes the run read from ``recorded["path"]``."""
    if not Path(path).is_file():
        raise AnnkitError(
            f"{key}={shown(path)}: there is no such file. Give the file the run read ({recorded['path']}, sha256 "
            f"{recorded['sha256'][:16]}…) where it is now."
        )
    now = file_record(path)["sha256"]
    if now != recorded["sha256"]:
        raise AnnkitError(
            f"{key}={shown(path)} is not the file the run read: its sha256 is {now}, and the run's file ({recorded['path']}) "
            f"had {recorded['sha256']}. {what} must read the same data, so only a moved or copied file (the same bytes) "
            f"may be given here. Point {key} at that file, or, to use other data, start a new run."
        )


def split_train_val(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): a seeded permutation of range(n); the first ``val_size`` are val.

    Both index lists are sorted, so ``limit_train`` takes the first N training samples in file
    order and the validation set does not depend on it.
    """
    train, val = split_indices(n, [val_size], seed)
    return train, val


def split_indices(n: int, sizes: list[int], seed: int) -> list[np.ndarray]:
    """Seeded disjoint index sets: ``sizes[i]`` rows each for the held-out parts, the rest first
    (the training part). Every list is sorted (file order)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    parts, start = [], sum(sizes)
    parts.append(np.sort(perm[start:]))
    for size in sizes:
        parts.append(np.sort(perm[start - size : start]))
        start -= size
    return parts
