"""Where a dataset's IDX files come from: look in the configured folders, else download.

The search order (each folder must hold all four files, raw or .gz):
``dataset.root`` itself → ``<root>/<TorchvisionName>/raw`` → each folder in ``dataset.search``
(relative to the working directory) → a download through torchvision into
``<root or data>/<TorchvisionName>/raw`` when ``dataset.download`` is true.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.data.idx import load_idx
from annkit.errors import AnnkitError, unknown_name

# role → base name of the file in the official release
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class IdxDataset:
    """What annkit knows about a dataset published as the four IDX files."""

    torchvision: str  # class in torchvision.datasets that can download it
    classes: tuple[str, ...]
    md5: dict[str, str]  # base name → md5 of the decompressed file of the official release
    how_to_get: str  # one sentence for the "not found" error
    shape: tuple[int, int] = (28, 28)  # every image's height × width in the official release


DATASETS: dict[str, IdxDataset] = {
    "fashion_mnist": IdxDataset(
        torchvision="FashionMNIST",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        md5={
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        how_to_get=(
            "On Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist` (files land in "
            "/usr/share/datasets/fashion-mnist), or put the four .gz files from "
            "https://github.com/zalandoresearch/fashion-mnist (data/fashion) into ./data/fashion_mnist "
            "or a folder you name with dataset.root=<folder>."
        ),
    ),
    "mnist": IdxDataset(
        torchvision="MNIST",
        classes=tuple(str(d) for d in range(10)),
        md5={
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        how_to_get=(
            "Put the four MNIST .gz files (train-images-idx3-ubyte.gz, …) into ./data/mnist or a "
            "folder you name with dataset.root=<folder>."
        ),
    ),
}


# md5 → what the file is, for every file annkit knows
KNOWN_FILES = {md5: f"{name}'s {base}" for name, spec in DATASETS.items() for base, md5 in spec.md5.items()}


def dataset_spec(name: str) -> IdxDataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise unknown_name("dataset", name, DATASETS, "Pick one with dataset=<name> (see configs/dataset/).") from None


def find_files(folder: Path) -> dict[str, Path] | None:
    """role → path when ``folder`` holds all four files (raw preferred over .gz), else None."""
    found = {}
    for role, base in FILES.items():
        for candidate in (folder / base, folder / f"{base}.gz"):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            return None
    return found


def candidate_folders(spec: IdxDataset, root: str | None, search: list[str]) -> list[Path]:
    folders = []
    if root:
        folders += [Path(root), Path(root) / spec.torchvision / "raw"]
    folders += [Path(s) for s in search]
    return folders


def download(spec: IdxDataset, root: Path) -> Path:
    """Fetch the files with torchvision (which checks the .gz md5 sums) into ``root/<Name>/raw`` and
    return that folder. torchvision downloads into a temporary folder beside the target (in ``root``,
    or in the working directory while ``root`` does not exist yet); only a complete download is moved
    into place, so a failed one leaves no folder behind."""
    import torchvision.datasets

    parent = root if root.is_dir() else Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix=".annkit-download-", dir=parent))
    try:
        for train in (True, False):
            getattr(torchvision.datasets, spec.torchvision)(root=str(scratch), train=train, download=True)
        raw = root / spec.torchvision / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for file in (scratch / spec.torchvision / "raw").iterdir():
            os.replace(file, raw / file.name)
        return raw
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def locate(name: str, root: str | None, search: list[str], allow_download: bool) -> dict[str, Path]:
    """The four files of dataset ``name``: from the first folder that has them all, else downloaded."""
    spec = dataset_spec(name)
    if root is not None and not Path(root).is_dir():
        raise AnnkitError(
            f"dataset.root={root} is not a folder on this machine ({Path(root).absolute()}"
            f"{' is a file' if Path(root).exists() else ' does not exist'}). Point dataset.root at the folder that holds "
            f"the four {name} IDX files (or the one a download should go to: create it first), or leave dataset.root "
            f"out to look in dataset.search ({', '.join(search) or 'empty'})."
        )
    folders = candidate_folders(spec, root, search)
    for folder in folders:
        found = find_files(folder)
        if found:
            return found
    looked = "; ".join(str(f.resolve()) if not f.is_absolute() else str(f) for f in folders)
    target = Path(root or "data")
    if not allow_download:
        raise AnnkitError(
            f"Could not find the {name} IDX files (train-images-idx3-ubyte[.gz] and the other three). "
            f"Looked in: {looked}. Downloading is off (dataset.download=false). {spec.how_to_get} "
            f"Or allow annkit to download them into {target / spec.torchvision / 'raw'} with dataset.download=true."
        )
    try:
        raw = download(spec, target)
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, … by mirror
        raise AnnkitError(
            f"Could not find the {name} IDX files, and downloading them failed. Looked in: {looked}. "
            f"The download into {target / spec.torchvision / 'raw'} failed with: "
            f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}. "
            f"{spec.how_to_get}"
        ) from err
    found = find_files(raw)
    if not found:
        raise AnnkitError(f"torchvision reported a download into {raw}, but the four IDX files are not there.")
    return found


def load_arrays(files: dict[str, Path], spec: IdxDataset, verify: bool) -> dict[str, np.ndarray]:
    """Read and check the four arrays: images N×H×W uint8, labels N in [0, K)."""
    arrays = {
        role: load_idx(path, spec.md5[FILES[role]] if verify else None, KNOWN_FILES) for role, path in files.items()
    }
    k = len(spec.classes)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise AnnkitError(
                f"{files[f'{split}_images']} and {files[f'{split}_labels']} do not match: images "
                f"{images.shape}, labels {labels.shape}; expected N×H×W images and N labels."
            )
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise AnnkitError(
                f"{files[f'{split}_labels']} holds labels outside 0…{k - 1} (min {labels.min()}, "
                f"max {labels.max()}), so it cannot be {spec.torchvision}."
            )
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise AnnkitError(
            f"Training images are {arrays['train_images'].shape[1:]} but test images are "
            f"{arrays['test_images'].shape[1:]} ({files['train_images'].parent})."
        )
    return arrays
