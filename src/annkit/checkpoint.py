"""Checkpoints: weights as safetensors with their JSON metadata in the same file, written atomically.

A checkpoint is one ``.safetensors`` file: the model's ``state_dict`` tensors, plus the
header metadata key ``annkit`` holding JSON (format, annkit version, epoch, step, metrics,
preprocessing and the resolved config). Loading it never executes code. Writes go to a
temporary file in the same folder, are fsync'ed and renamed over the target, so a crash
mid-write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from annkit import __version__
from annkit.errors import AnnkitError
from annkit.loop import Hook

FORMAT = "annkit.checkpoint/1"
META_KEY = "annkit"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def serialize_checkpoint(state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint file: ``state_dict`` (moved to CPU) with ``meta`` (JSON-able)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    header = {"format": FORMAT, "annkit_version": __version__, **meta}
    return save(tensors, metadata={META_KEY: json.dumps(header)})


def save_checkpoint(path: Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write a checkpoint to ``path`` atomically."""
    atomic_write_bytes(Path(path), serialize_checkpoint(state_dict, meta))
    return Path(path)


class CheckpointHook(Hook):
    """``last.safetensors`` after every epoch, ``best.safetensors`` when the best metric improves."""

    def __init__(self, folder: Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
        self.folder, self.model, self.meta = Path(folder), model, meta

    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None:
        meta = {**self.meta, "epoch": int(row["epoch"]), "step": int(row["step"]), "metrics": row}
        data = serialize_checkpoint(self.model.state_dict(), meta)
        atomic_write_bytes(self.folder / "last.safetensors", data)
        if is_best:
            atomic_write_bytes(self.folder / "best.safetensors", data)


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) from an annkit checkpoint; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise AnnkitError(f"No checkpoint at {path}. Give the path of a .safetensors file written by annkit (a run's checkpoints/best.safetensors).")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta_json = (f.metadata() or {}).get(META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise AnnkitError(
            f"{path} is not a readable safetensors file ({err}). annkit only loads safetensors "
            f"checkpoints (never pickles); the file may be truncated or of another format."
        ) from None
    if meta_json is None:
        raise AnnkitError(f"{path} is a safetensors file but not an annkit checkpoint (no '{META_KEY}' metadata).")
    return tensors, json.loads(meta_json)
