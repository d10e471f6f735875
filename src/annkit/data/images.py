"""Image datasets read from IDX files (Fashion-MNIST, MNIST), kept as uint8 on the device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from annkit.data.dataset import Data, Split, split_train_val
from annkit.data.preprocess import Preprocess, pixel_stats
from annkit.data.shaping import read_weight_file, shape_training_set
from annkit.data.sources import dataset_spec, load_arrays, locate
from annkit.errors import AnnkitError


def load_image_data(
    name: str,
    *,
    root: str | None,
    search: list[str],
    download: bool,
    verify: bool,
    val_size: int,
    limit_train: int | None,
    augment: dict[str, Any],
    classes: list[int | str] | None = None,
    class_fraction: list[float] | None = None,
    label_noise: dict[str, float] | None = None,
    sample_weight: str | None = None,
    seed: int,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Data:
    """Read, verify and split an IDX dataset; shape its training split; move it to ``device``.

    Images stay uint8 on the device; ``Data.prepare`` augments training batches and normalises
    every batch with the training split's pixel mean and std; augmentation draws from ``generator``
    (the run's shuffling stream, on ``device``)."""
    spec = dataset_spec(name)
    files = locate(name, root, search, download)
    arrays = load_arrays(files, spec, verify)
    names = spec.classes
    if classes is not None:
        arrays, names = select_classes(arrays, names, classes, name)
    images, labels = arrays["train_images"], arrays["train_labels"].astype(np.int64)
    if val_size >= len(labels):
        raise AnnkitError(
            f"dataset.val_size={val_size} leaves no training data: the training file holds "
            f"{len(labels)} samples. Use a value below {len(labels)}, e.g. dataset.val_size=5000."
        )
    train_idx, val_idx = split_train_val(len(labels), val_size, seed)
    weights = (
        None if sample_weight is None else read_weight_file(sample_weight, len(labels), f"{files['train_labels'].name}")
    )
    shaped = shape_training_set(
        train_idx,
        labels,
        task="classification",
        k=len(names),
        limit_train=limit_train,
        class_fraction=class_fraction,
        label_noise=label_noise,
        weights=weights,
        rng=np.random.default_rng(seed),
    )

    def put(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device=device, dtype=dtype)

    train_images = torch.from_numpy(images[shaped.idx])
    mean, std = pixel_stats(train_images)  # once, on the host copy, before it moves to the device
    std = max(std, 1e-6)
    return Data(
        train=Split(
            train_images.to(device),
            put(shaped.labels, torch.int64),
            None if shaped.weights is None else put(shaped.weights, torch.float32),
        ),
        val=Split(put(images[val_idx], torch.uint8), put(labels[val_idx], torch.int64)),
        test=Split(put(arrays["test_images"], torch.uint8), put(arrays["test_labels"], torch.int64)),
        task="classification",
        names=names,
        prepare=Preprocess(mean, std, hflip=augment["hflip"], shift=augment["shift"], generator=generator),
        source=str(files["train_images"].parent),
        preprocessing={"kind": "image", "mean": mean, "std": std},
        notes=(
            [f"classes {', '.join(names)} only (dataset.classes), numbered 0 … {len(names) - 1}"]
            if classes is not None
            else []
        )
        + shaped.notes,
    )


def select_classes(
    arrays: dict[str, np.ndarray], names: tuple[str, ...], chosen: list[int | str], dataset: str
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Keep only the samples of the ``chosen`` classes (indices or names, in the order given) in
    both files; their labels become 0 … len(chosen) − 1 in that order."""
    index = []
    for c in chosen:
        i = names.index(c) if isinstance(c, str) and c in names else c
        if not isinstance(i, int) or not 0 <= i < len(names):
            listing = ", ".join(f"{j} {n}" for j, n in enumerate(names))
            raise AnnkitError(
                f"dataset.classes names {c!r}, which is not a class of {dataset}. Its classes: {listing}. "
                f"Give indices or exact names, e.g. dataset.classes=[0,1,2,3,4]."
            )
        index.append(i)
    if len(set(index)) != len(index):
        raise AnnkitError(f"dataset.classes={chosen} names a class twice; give each class once.")
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[index] = np.arange(len(index))
    out = {}
    for split in ("train", "test"):
        new = remap[arrays[f"{split}_labels"].astype(np.int64)]
        keep = new >= 0
        out[f"{split}_images"], out[f"{split}_labels"] = arrays[f"{split}_images"][keep], new[keep]
    return out, tuple(names[i] for i in index)
