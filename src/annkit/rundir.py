"""A run dir is never overwritten: a folder that already holds a run is refused, or, when the user
says so (``trainer.overwrite=true``, ``overwrite=true`` for eval and predict), moved aside first.
Nothing is ever deleted. Imports nothing heavy: the cli checks before Hydra makes any folder.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from annkit.commands import command, override
from annkit.errors import AnnkitError

RESULTS = ("metrics.json", "predictions.csv", "lr_find.json", "optimization_results.yaml", "multirun.yaml")
FOLDERS = ("checkpoints", "tb")  # with any file in them


def holds_run(folder: Path) -> list[str]:
    """What in ``folder`` is a run's result (``metrics.json``, ``checkpoints/``, ``tb/`` …); [] for a new,
    empty or only-started folder (Hydra's ``.hydra/`` and a log file are no result)."""
    if not folder.is_dir():
        return []
    found = [name for name in RESULTS if (folder / name).is_file()]
    found += [
        f"{name}/"
        for name in FOLDERS
        if (folder / name).is_dir() and any(p.is_file() for p in (folder / name).rglob("*"))
    ]
    return found


def sweep_holds_runs(folder: Path) -> list[str]:
    """What a sweep dir holds: its own results and those of its job folders (``0/metrics.json`` …)."""
    if not folder.is_dir():
        return []
    found = holds_run(folder)
    for job in sorted(p for p in folder.iterdir() if p.is_dir()):
        found += [f"{job.name}/{what}" for what in holds_run(job)]
    return found


def discard_if_unused(folder: Path, task_log: str) -> bool:
    """Remove the folder Hydra made for a command that was then refused before any work: only its
    ``.hydra/`` record and the log ``task_log`` in it, nothing a run wrote; then the empty folders above
    it, up to the working directory. Returns whether it was removed."""
    here = Path.cwd().resolve()
    if (
        not folder.is_dir()
        or folder.resolve() == here
        or folder.resolve() in here.parents
        or holds_run(folder)
        or {p.name for p in folder.iterdir()} - {".hydra", task_log}
    ):
        return False  # the working directory (e.g. board's run.dir: .) and what holds it are never removed
    shutil.rmtree(folder, ignore_errors=True)
    parent = folder.resolve().parent
    while parent != here and here in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
    return True


def aside(folder: Path) -> Path:
    """A new sibling name for ``folder``: ``<name>.old-<YYYYmmdd-HHMMSS>[-n]``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder.with_name(f"{folder.name}.old-{stamp}")
    n = 1
    while target.exists():
        target = folder.with_name(f"{folder.name}.old-{stamp}-{n}")
        n += 1
    return target


def protect(folder: Path, *, task: str, sweep: bool, overwrite: bool, overwrite_key: str) -> Path | None:
    """Refuse to write a run into ``folder`` when it already holds one; with ``overwrite``, move the
    old run aside and return where it went (None when there was nothing to move)."""
    found = sweep_holds_runs(folder) if sweep else holds_run(folder)
    if not found:
        return None
    if overwrite:
        target = aside(folder)
        folder.rename(target)
        return target
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    go_on = (
        f"To go on with that run: `{command('train', override('resume', str(folder)))}`. "
        if task == "train" and not sweep and "checkpoints/" in found and "metrics.json" not in found
        else ""
    )
    raise AnnkitError(
        f"{folder} already holds {'a sweep' if sweep else 'a run'} ({shown}), and annkit never writes a run over "
        f"another. Nothing was run and nothing was changed. {go_on}To start a new one, pick another folder "
        f"({key}=<new folder>) or leave {key} out (every run gets its own timestamped folder). To replace it, add "
        f"{overwrite_key}=true: the old {'sweep' if sweep else 'run'} is moved to {folder.name}.old-<time> "
        f"beside it (nothing is deleted)."
    )
