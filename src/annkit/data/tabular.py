"""Tabular datasets: logic gates, TF Playground's 2-D sets and the user's own CSV files.

Each loader returns a :class:`~annkit.data.Data` of float32 feature rows on the device. Features
are standardised once, here, with the training split's mean and standard deviation when
``standardize`` is true — x' = (x − μ_train) / σ_train, σ = 1 for a constant column — and μ, σ
are kept in ``Data.preprocessing`` for checkpoints. So ``Data.prepare`` is the identity: a batch
needs no work before the model sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from annkit.data.csv_rows import csv_columns
from annkit.data.csv_table import Table, read_csv_table
from annkit.data.dataset import Data, Plane, Split, file_record, split_indices
from annkit.data.playground import CLASSES as PLAYGROUND_CLASSES
from annkit.data.playground import generate, make_features
from annkit.data.shaping import Shaped, read_weight_file, shape_training_set
from annkit.errors import AnnkitError, unknown_name
from annkit.schema import GATES

TRUTH_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)


def as_prepared(x: torch.Tensor, train: bool) -> torch.Tensor:
    """Tabular inputs are standardised at load time: batches go to the model as they are."""
    return x


def count(size: int | float, n: int) -> int:
    """A split size given as a count (int) or a share of n (float in (0, 1))."""
    return size if isinstance(size, int) else round(size * n)


def standardize(
    train: np.ndarray, others: Sequence[np.ndarray], enabled: bool
) -> tuple[np.ndarray, list[np.ndarray], dict[str, Any]]:
    """(train, others) standardised with the training rows' μ and σ, and the JSON record of them."""
    if not enabled:
        return train, list(others), {"standardize": False}
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)

    def apply(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    return apply(train), [apply(o) for o in others], {"standardize": True, "mean": mean.tolist(), "std": std.tolist()}


def tensors(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, task: str, device: torch.device) -> Split:
    y_dtype = torch.int64 if task == "classification" else torch.float32
    return Split(
        torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=device),
        torch.as_tensor(np.ascontiguousarray(y), dtype=y_dtype, device=device),
        None if w is None else torch.as_tensor(w, dtype=torch.float32, device=device),
    )


Rows = tuple[np.ndarray, np.ndarray]  # (features N×F, targets) of one split


def build(
    x: np.ndarray,
    shaped: Shaped,
    val: Rows,
    test: Rows,
    *,
    task: str,
    names: Sequence[str],
    features: Sequence[str],
    standardize_inputs: bool,
    source: str,
    notes: list[str],
    device: torch.device,
) -> Data:
    """Data from the training source's features ``x`` (rows picked by ``shaped``) and the held-out splits."""
    train_x, (val_x, test_x), stats = standardize(x[shaped.idx], [val[0], test[0]], standardize_inputs)
    return Data(
        train=tensors(train_x, shaped.labels, shaped.weights, task, device),
        val=tensors(val_x, val[1], None, task, device),
        test=tensors(test_x, test[1], None, task, device),
        task=task,
        names=tuple(names),
        prepare=as_prepared,
        source=source,
        preprocessing={"kind": "table", "features": list(features), **stats},
        notes=[*notes, *shaped.notes],
    )


def load_logic(name: str, *, gate: str, copies: int, noise: float, seed: int, device: torch.device, **_: Any) -> Data:
    """A two-input logic gate's truth table (deck 001: "Logical Computation: Artificial Neuron").

    Training: the four input pairs repeated ``copies`` times, with Gaussian jitter of std ``noise``
    on the inputs of every copy when noise > 0. Validation and test: the four exact inputs — the
    truth table is the whole domain, so the question is whether the network can represent it."""
    if gate not in GATES:
        raise unknown_name("logic gate", gate, GATES, "Set dataset.gate=<name>, e.g. dataset.gate=and.")
    labels = np.array(GATES[gate], dtype=np.int64)
    rng = np.random.default_rng(seed)
    x = np.tile(TRUTH_INPUTS, (copies, 1))
    if noise > 0:
        x = x + rng.normal(0.0, noise, size=x.shape).astype(np.float32)
    clean = tensors(TRUTH_INPUTS, labels, None, "classification", device)
    return Data(
        train=tensors(x, np.tile(labels, copies), None, "classification", device),
        val=clean,
        test=clean,
        task="classification",
        names=("0", "1"),
        prepare=as_prepared,
        source=f"{gate} truth table"
        + (f" × {copies} copies" if copies > 1 else "")
        + (f", noise σ={noise:g}" if noise else ""),
        preprocessing={"kind": "table", "features": ["x1", "x2"], "standardize": False},
    )


def load_xor(name: str, **kwargs: Any) -> Data:
    """XOR, the function a single neuron cannot compute (Minsky & Papert): ``logic`` with gate=xor."""
    return load_logic(name, gate="xor", **kwargs)


def load_playground(
    name: str,
    *,
    kind: str,
    task: str,
    n: int,
    noise: float,
    train_ratio: float,
    val_size: float,
    features: list[str],
    standardize: bool,
    class_fraction: list[float] | None,
    label_noise: dict[str, float],
    seed: int,
    device: torch.device,
    **_: Any,
) -> Data:
    """TF Playground's 2-D data (playground.tensorflow.org): ``n`` points of ``kind``, shuffled;
    ``train_ratio`` of them train (the playground's "ratio of training to test data"), ``val_size``·n
    of the held-out rest validate and the remainder test."""
    rng = np.random.default_rng(seed)
    points, targets = generate(kind, task, n, noise, rng)
    n_train = int(n * train_ratio)
    n_val = round(val_size * n)
    if n_train < 2 or n - n_train - n_val < 1 or n_val < 1:
        raise AnnkitError(
            f"dataset.n={n} with dataset.train_ratio={train_ratio:g} and dataset.val_size={val_size:g} gives {n_train} "
            f"training, {n_val} validation and {n - n_train - n_val} test points; each needs at least 1 (training 2). "
            f"Use more points or other ratios."
        )
    train_idx, val_idx, test_idx = split_indices(n, [n_val, n - n_train - n_val], seed)
    y = targets.astype(np.float32).reshape(-1, 1) if task == "regression" else targets.astype(np.int64)
    k = 2 if task == "classification" else 1
    shaped = shape_training_set(
        train_idx,
        y,
        task=task,
        k=k,
        class_fraction=class_fraction,
        label_noise=label_noise,
        rng=rng,
    )
    x = make_features(points, features)
    data = build(
        x,
        shaped,
        (x[val_idx], y[val_idx]),
        (x[test_idx], y[test_idx]),
        task=task,
        names=PLAYGROUND_CLASSES if task == "classification" else ("target",),
        features=features,
        standardize_inputs=standardize,
        source=f"TF Playground {kind} ({task}), n={n}, noise {noise:g}",
        notes=[],
        device=device,
    )
    stats = data.preprocessing
    mean = np.asarray(stats.get("mean", 0.0))
    std = np.asarray(stats.get("std", 1.0))

    def inputs(grid: np.ndarray) -> np.ndarray:  # points of the plane → the features the model reads
        return ((make_features(grid.astype(np.float32), features) - mean) / std).astype(np.float32)

    data.plane = Plane(
        inputs, {"train": points[shaped.idx], "val": points[val_idx], "test": points[test_idx]}, (-6.0, 6.0, -6.0, 6.0)
    )
    return data


def _check_file_keys(path: str | None, train: str | None, val: str | None, test: str | None) -> None:
    """Exactly one of dataset.path (split three ways) and dataset.train (with optional val / test files)."""
    if (path is None) == (train is None):
        raise AnnkitError(
            "dataset=csv needs exactly one of dataset.path (one file, split into train/val/test by dataset.val_size "
            "and dataset.test_size) and dataset.train (a training file, with optional dataset.val and dataset.test "
            f"files); got path={path!r} and train={train!r}. Set one, e.g. dataset.path=example:iris.csv (Fisher's iris, shipped with annkit)."
        )
    if path is not None and (val is not None or test is not None):
        raise AnnkitError(
            f"dataset.path={path} is split into train/val/test by dataset.val_size and dataset.test_size, so "
            f"dataset.val / dataset.test files cannot go with it (got val={val!r}, test={test!r}). For separate files "
            f"use dataset.train=<file> instead of dataset.path, or leave dataset.val and dataset.test null."
        )


def _main_table(
    main_file: str,
    target: str | list[str],
    features: list[str] | None,
    sample_weight: str | None,
    task: str,
    delimiter: str,
) -> tuple[Table, str | None, np.ndarray | None]:
    """(the training file's table, the weight column it holds or None, the weights): the weights are the
    column ``sample_weight`` names, or else the weight file it names."""
    weight_column = None
    if sample_weight is not None and sample_weight in csv_columns(main_file, delimiter):
        weight_column = sample_weight
    table = read_csv_table(
        main_file, target=target, features=features, weight_column=weight_column, task=task, delimiter=delimiter
    )
    n = len(table.y)
    if table.task == "classification" and len(table.classes) < 2:
        raise AnnkitError(
            f"dataset.target={table.target_names[0]} of {main_file} holds a single class ({table.classes[0]!r}, in all "
            f"{n:,} rows), so there is nothing to tell apart: a classifier needs at least 2 classes. Check that "
            f"dataset.target names the column you mean (the columns: {', '.join(csv_columns(main_file, delimiter))}); "
            f"to predict the column's numbers instead, set dataset.task=regression loss=mse."
        )
    weights = table.w
    if sample_weight is not None and weight_column is None:
        weights = read_weight_file(sample_weight, n, str(main_file))
    return table, weight_column, weights


def _held_out(table: Table, files: dict[str, str | None], carved: list[np.ndarray], delimiter: str) -> dict[str, Rows]:
    """(x, y) of the val and test splits: each its own file, or rows ``carved`` from the training file."""
    held_out: dict[str, Rows] = {}
    for (split, file), idx in zip(files.items(), carved):
        if file:  # its own file, read with the training file's columns, task and classes
            other = read_csv_table(
                file,
                target=table.target_names,
                features=table.feature_names,
                task=table.task,
                classes=table.classes if table.task == "classification" else None,
                delimiter=delimiter,
            )
            held_out[split] = (other.x, other.y)
        elif len(idx) == 0:
            raise AnnkitError(
                f"dataset.{split}_size gives 0 {split} rows; use a positive size or a dataset.{split} file."
            )
        else:
            held_out[split] = (table.x[idx], table.y[idx])
    return held_out


def load_csv(
    name: str,
    *,
    path: str | None,
    train: str | None,
    val: str | None,
    test: str | None,
    target: str | list[str],
    features: list[str] | None,
    task: str,
    sample_weight: str | None,
    standardize: bool,
    val_size: int | float,
    test_size: int | float,
    delimiter: str,
    limit_train: int | None,
    class_fraction: list[float] | None,
    label_noise: dict[str, float],
    seed: int,
    device: torch.device,
    **_: Any,
) -> Data:
    """The user's table: one file split three ways, or separate train/val/test files (a missing
    val or test file is carved from the training file with val_size / test_size)."""
    _check_file_keys(path, train, val, test)
    main_file = path or train
    table, weight_column, weights = _main_table(main_file, target, features, sample_weight, task, delimiter)
    n = len(table.y)
    files = {"val": val, "test": test}
    sizes = [0 if val else count(val_size, n), 0 if test else count(test_size, n)]
    if n - sum(sizes) < 2:
        raise AnnkitError(
            f"{main_file} has {n} rows; after {sizes[0]} validation and {sizes[1]} test rows fewer than 2 are left to "
            f"train on. Use smaller dataset.val_size / dataset.test_size, or separate files (dataset.val, dataset.test)."
        )
    train_idx, *carved = split_indices(n, sizes, seed)
    held_out = _held_out(table, files, carved, delimiter)
    k = len(table.classes or table.target_names)
    shaped = shape_training_set(
        train_idx,
        table.y,
        task=table.task,
        k=k,
        limit_train=limit_train,
        class_fraction=class_fraction,
        label_noise=label_noise,
        weights=weights,
        rng=np.random.default_rng(seed),
    )
    names = table.classes if table.task in ("classification", "multilabel") else tuple(table.target_names)
    notes = [f"task {table.task} ({table.task_reason})", f"features: {', '.join(table.feature_names)}"]
    if weight_column:
        notes.append(f"sample weights from column {weight_column}")
    data = build(
        table.x,
        shaped,
        held_out["val"],
        held_out["test"],
        task=table.task,
        names=names,
        features=table.feature_names,
        standardize_inputs=standardize,
        source=", ".join(str(f) for f in (main_file, val, test) if f),
        notes=notes,
        device=device,
    )
    read_files = {
        "path": path,
        "train": train,
        "val": val,
        "test": test,
        "sample_weight": None if weight_column else sample_weight,
    }
    data.files = {f"dataset.{key}": file_record(file) for key, file in read_files.items() if file is not None}
    return data
