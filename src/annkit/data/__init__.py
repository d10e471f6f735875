"""Datasets as tensors on the device: IDX reading, splits, batching, augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from annkit.data.batcher import Batcher, Preprocess, augment, normalize, pixel_stats
from annkit.data.sources import DATASETS, dataset_spec, load_arrays, locate
from annkit.errors import AnnkitError

__all__ = ["Batcher", "Preprocess", "DATASETS", "ImageData", "augment", "load_image_data", "normalize", "split_train_val"]


@dataclass
class ImageData:
    """An image classification dataset, every split resident on one device as uint8/int64."""

    train_x: torch.Tensor  # N×H×W uint8
    train_y: torch.Tensor  # N int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: float  # of train pixels / 255
    std: float
    source: Path  # the folder the files were read from

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def split_train_val(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): a seeded permutation of range(n); the first ``val_size`` are val.

    Both index lists are sorted, so ``limit_train`` takes the first N training samples in file
    order and the validation set does not depend on it.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


def load_image_data(
    name: str,
    *,
    root: str | None,
    search: list[str],
    download: bool,
    verify: bool,
    val_size: int,
    limit_train: int | None,
    seed: int,
    device: torch.device,
) -> ImageData:
    spec = dataset_spec(name)
    files = locate(name, root, search, download)
    arrays = load_arrays(files, spec, verify)
    images, labels = arrays["train_images"], arrays["train_labels"]
    if val_size >= len(labels):
        raise AnnkitError(
            f"dataset.val_size={val_size} leaves no training data: the training file holds "
            f"{len(labels)} samples. Use a value below {len(labels)}, e.g. dataset.val_size=5000."
        )
    train_idx, val_idx = split_train_val(len(labels), val_size, seed)
    if limit_train is not None:
        train_idx = train_idx[:limit_train]

    def put(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device=device, dtype=dtype)

    train_images = torch.from_numpy(images[train_idx])
    mean, std = pixel_stats(train_images)  # once, on the host copy, before it moves to the device
    return ImageData(
        train_x=train_images.to(device),
        train_y=put(labels[train_idx], torch.int64),
        val_x=put(images[val_idx], torch.uint8),
        val_y=put(labels[val_idx], torch.int64),
        test_x=put(arrays["test_images"], torch.uint8),
        test_y=put(arrays["test_labels"], torch.int64),
        classes=spec.classes,
        mean=mean,
        std=max(std, 1e-6),
        source=files["train_images"].parent,
    )
