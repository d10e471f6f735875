"""The files annkit writes whole or not at all, and its JSON records (metrics.json, lr_find.json,
sweep_summary.json): one writer, so each record is valid JSON (NaN and ±inf become null), names the versions that
wrote it where asked, and never exists half-written. Imports no torch (sweeps and the CLI use it)."""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from annkit import __version__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private (0600); a checkpoint is as readable as any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a second Ctrl-C mid-write included: the temporary file goes, the old file stays
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


def finite_or_null(tree: Any) -> Any:
    """NaN and ±inf (a diverged run) become null, so the record stays valid JSON."""
    if isinstance(tree, dict):
        return {k: finite_or_null(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [finite_or_null(v) for v in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


def versions() -> dict[str, str]:
    """What wrote a record: torch (its build, e.g. 2.14.1+cu130), annkit and Python. Only runs that have imported
    torch call this; the module itself stays torch-free."""
    import torch

    return {"torch": torch.__version__, "annkit": __version__, "python": platform.python_version()}


def write_record(path: Path, record: dict[str, Any]) -> None:
    """``record`` as indented JSON at ``path``, atomically, non-finite numbers as null."""
    atomic_write_bytes(path, json.dumps(finite_or_null(record), indent=2, allow_nan=False).encode())
