"""Datasets as tensors on the device: where they come from, how they are split, batched and prepared.

Every dataset, image or table, becomes a :class:`Data`: three :class:`Split` s (inputs, targets,
optional per-sample weights) resident on one device, the task (classification, multilabel or
regression), the names of its classes / labels / targets, and the preprocessing a checkpoint
needs to prepare new inputs the same way. :func:`load_data` dispatches on ``dataset.name``.
"""

from __future__ import annotations

from typing import Any

import torch

from annkit.data.batcher import Batcher
from annkit.data.dataset import (
    Data,
    Plane,
    Split,
    check_same_file,
    file_record,
    plane_of,
    split_indices,
    split_train_val,
    table_plane,
)
from annkit.data.images import load_image_data
from annkit.data.preprocess import Preprocess, augment, normalize
from annkit.data.tabular import load_csv, load_logic, load_playground, load_xor
from annkit.errors import unknown_name

__all__ = [
    "Batcher",
    "Data",
    "Plane",
    "Preprocess",
    "Split",
    "augment",
    "check_same_file",
    "file_record",
    "load_data",
    "normalize",
    "plane_of",
    "split_indices",
    "split_train_val",
    "table_plane",
]

LOADERS = {
    "fashion_mnist": load_image_data,
    "mnist": load_image_data,
    "xor": load_xor,
    "logic": load_logic,
    "playground": load_playground,
    "csv": load_csv,
}


def load_data(
    spec: dict[str, Any], *, seed: int, device: torch.device, generator: torch.Generator | None = None
) -> Data:
    """The dataset ``spec`` describes (the validated ``dataset`` config node), on ``device``.
    ``seed`` drives splits and shaping; ``generator`` (on ``device``) drives augmentation."""
    name = spec["name"]
    if name not in LOADERS:
        raise unknown_name("dataset", name, LOADERS, "Pick one with dataset=<name> (see configs/dataset/).")
    return LOADERS[name](**spec, seed=seed, device=device, generator=generator)
