"""Where and how a run executes: device, seeds, determinism, precision."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from annkit.errors import AnnkitError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda if available, else mps, else cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AnnkitError(
                f"trainer.device={name} asks for a CUDA GPU, but torch {torch.__version__} sees none "
                f"(no NVIDIA driver, or a CPU-only torch build). Use trainer.device=auto or trainer.device=cpu."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AnnkitError(
                f"trainer.device={name}: only {torch.cuda.device_count()} CUDA device(s) are visible "
                f"(cuda:0 … cuda:{torch.cuda.device_count() - 1})."
            )
    if device.type == "mps" and not _mps_available():
        raise AnnkitError(
            f"trainer.device={name} asks for Apple's MPS backend, which this machine/torch build lacks. "
            f"Use trainer.device=auto or trainer.device=cpu."
        )
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``trainer.precision``: auto → bf16 on CUDA, full fp32 elsewhere."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch (all devices); optionally demand deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by cuBLAS
    # set both ways: the jobs of a sweep share one process
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = False


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A dedicated random stream on ``device`` (shuffling, augmentation), independent of dropout's."""
    return torch.Generator(device=device).manual_seed(seed)
