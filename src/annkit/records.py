"""The files annkit writes whole or not at all, and its JSON records (metrics.json, lr_find.json,
sweep_summary.json): one writer, so each record is valid JSON (NaN and ±inf become null), names the versions that
wrote it where asked, and never exists half-written. Imports no torch (sweeps and the CLI use it).

And one reader, :func:`read_data`, for every JSON or YAML file annkit reads that anyone may have written (a run dir
to compare, a weights file): plain data or a one-line reason, never a hang or a traceback."""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import yaml

from annkit import __version__

MAX_DATA_BYTES = 64 * 2**20  # a record or a hand-written file is small; a larger one is refused before it is read
MAX_DEPTH = 64  # annkit's own records and metadata nest a dozen levels; deeper is a crafted file


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


class _PlainYaml(yaml.SafeLoader):
    """YAML as plain data without anchors and aliases: annkit and Hydra never write them, and a few lines of nested
    aliases (a "billion laughs") become billions of values once walked."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "an alias (*name), which annkit does not read", mark)
        return super().compose_node(parent, index)


def too_deep(tree: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and dicts nest deeper than ``limit`` in ``tree`` (walked without recursion)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def read_data(path: Path, max_bytes: int = MAX_DATA_BYTES) -> Any:
    """The JSON (``.json``) or YAML file at ``path`` as plain data; ``ValueError`` with the reason in one line when it
    is larger than ``max_bytes``, not UTF-8, not valid, uses YAML aliases or nests deeper than :data:`MAX_DEPTH`."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"it is {size:,} bytes, more than the {max_bytes:,} annkit reads")
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        text = path.read_bytes().decode("utf-8")
        tree = json.loads(text) if kind == "JSON" else yaml.load(text, Loader=_PlainYaml)  # a SafeLoader
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    except RecursionError:
        raise ValueError(f"it nests deeper than the {MAX_DEPTH} levels annkit reads") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"it is not valid YAML: {err.problem or err.context}{where}") from None
    except (ValueError, yaml.YAMLError) as err:
        raise ValueError(f"it is not valid {kind}: {' '.join(str(err).split())}") from None
    if too_deep(tree):
        raise ValueError(f"it nests deeper than the {MAX_DEPTH} levels annkit reads")
    return tree
