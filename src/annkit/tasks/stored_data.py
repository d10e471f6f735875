"""A checkpoint's own data, read again: the dataset config a run stored, made safe to load on this machine.

The task layer: ``annkit eval`` scores a checkpoint on it and ``annkit export`` verifies an exported model on its
validation inputs. The stored config is data (the trust boundary checked it): it never turns a download on, a stored
``root`` that is not on this machine is left out, and a CSV given in its place must hold the bytes the run read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annkit.checkpoint import Checkpoint
from annkit.config import TRAIN_SCHEMA, portable
from annkit.data import check_same_file
from annkit.errors import AnnkitError


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied key by key (nested mappings merged, not replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def dataset_spec(given: dict[str, Any] | None, ckpt: Checkpoint) -> tuple[dict[str, Any], str]:
    """(the validated dataset config to load, where it came from, for the header). The checkpoint's own
    config is data: it never turns a download on (``download`` is false unless given here), and a
    stored ``root`` that does not exist on this machine is left out; a CSV file given in its place
    must hold the bytes the run read (its sha256)."""
    if given is not None and "name" in given:
        holder = {"dataset": given}
        portable(holder)
        return holder["dataset"], "dataset=" + given["name"]
    stored = dict(ckpt.meta["config"]["dataset"])
    notes = []
    if "download" in stored:
        stored["download"] = False
    if stored.get("root") is not None and not Path(stored["root"]).is_dir():
        notes.append(f"its dataset.root {stored['root']} is not on this machine")
        stored["root"] = None
    spec = stored if given is None else merged(stored, given)
    origin = "the checkpoint's dataset config" + (
        "" if given is None else " with " + ", ".join(f"dataset.{k}" for k in given)
    )
    origin += "".join(f" ({note})" for note in notes)
    try:
        TRAIN_SCHEMA["dataset"](spec)
    except AnnkitError as err:
        if given is not None:
            raise
        raise AnnkitError(
            f"The dataset config stored in {ckpt.path} does not fit this annkit ({err}) Name the dataset yourself with "
            f"dataset=<name> (and its keys, dataset.<key>=…), or change a stored key with dataset.<key>=value."
        ) from None
    holder = {"dataset": spec}
    portable(holder)  # paths given here are relative to this folder (example:<name>, a table shipped with annkit)
    spec = holder["dataset"]
    files = ckpt.meta["data"].get("files", {})
    for key in given or {}:
        if f"dataset.{key}" in files and isinstance(spec.get(key), str):
            check_same_file(f"dataset.{key}", spec[key], files[f"dataset.{key}"], "Scoring the run's own split")
    return spec, origin
