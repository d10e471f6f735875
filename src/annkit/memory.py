"""Will the model fit? Its memory, estimated from the config before any data is read or tensor made,
against what the device has.

An MLP of layer widths n₀ → n₁ → … → n_L holds P = Σ (nᵢ·nᵢ₊₁ + nᵢ₊₁) parameters (+ 2 per unit of
a batch or layer norm), 4 bytes each in fp32. Training keeps, per parameter: the weight, its
gradient, the optimizer's state (Adam/AdamW: 2 tensors; SGD with momentum: 1; plain SGD: 0) and
the best epoch's copy; a checkpoint's bytes (weights, optimizer state, best copy) are built in host
memory before they are written. A batch keeps about four tensors per hidden unit for backprop
(the linear output, the norm's, the activation's, the dropout mask), B × Σ nᵢ × 4 each. The
estimate is a floor: the data, torch itself and the allocator's slack come on top.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from annkit.data.csv_rows import csv_columns
from annkit.data.sources import DATASETS
from annkit.errors import AnnkitError

BYTES = 4  # fp32
GB = 1024**3


def optimizer_slots(spec: dict[str, Any]) -> int:
    """Tensors of optimizer state per parameter, by torch.optim class (2 when unknown: Adam's)."""
    name = str(spec.get("_target_", "")).rsplit(".", 1)[-1]
    if name == "SGD":
        return 1 if spec.get("momentum", 0) else 0
    if name == "RMSprop":
        return 1 + bool(spec.get("momentum", 0)) + bool(spec.get("centered", False))
    if name in ("Adagrad", "Rprop"):
        return 1 if name == "Adagrad" else 2
    return 2 + bool(spec.get("amsgrad", False))


@dataclass(frozen=True)
class Estimate:
    params: int
    state_bytes: int  # weights, gradients, optimizer state, best copy (and the checkpoint's host copy)
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.state_bytes + self.activation_bytes


def estimate(
    widths: Sequence[int], *, norm: bool, batch: int, eval_batch: int, slots: int | None, host_checkpoint: bool
) -> Estimate:
    """The memory of an MLP with layer ``widths`` [in, *hidden, out]; ``slots``: optimizer state
    tensors per parameter, None for inference only (weights and a batch's activations)."""
    hidden = widths[1:-1]
    params = sum(a * b + b for a, b in itertools.pairwise(widths)) + (2 * sum(hidden) if norm else 0)
    if slots is None:
        copies = 1
        activations = eval_batch * 2 * max(widths) * BYTES
    else:
        copies = 3 + slots + ((2 + slots) if host_checkpoint else 0)
        train = batch * (2 * (widths[0] + widths[-1]) + 4 * sum(hidden)) * BYTES
        activations = max(train, eval_batch * 2 * max(widths) * BYTES)
    return Estimate(params, copies * params * BYTES, activations)


def available(device: torch.device) -> tuple[int, str]:
    """(bytes this process may still allocate on ``device``, where that number comes from)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free on {device}"
    limits = []
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        limits.append((int(info["MemAvailable"].split()[0]) * 1024, "MemAvailable in /proc/meminfo"))
    except (OSError, KeyError, ValueError):
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        limits.append((pages * size, "the machine's memory"))
    cgroup = Path("/sys/fs/cgroup")
    try:
        cap = (cgroup / "memory.max").read_text().strip()
        if cap != "max":
            used = int((cgroup / "memory.current").read_text())
            limits.append((int(cap) - used, "this cgroup's memory.max"))
    except (OSError, ValueError):
        pass
    return min(limits)


def check_fits(
    widths: Sequence[int],
    device: torch.device,
    *,
    norm: bool,
    batch: int,
    eval_batch: int,
    slots: int | None,
    what: str,
) -> Estimate:
    """Refuse, in one paragraph with the numbers, a model that cannot fit on ``device``."""
    est = estimate(
        widths, norm=norm, batch=batch, eval_batch=eval_batch, slots=slots, host_checkpoint=device.type == "cpu"
    )
    limit, source = available(device)
    if est.total <= limit:
        return est
    shape = " → ".join(f"{w:,}" for w in widths)
    per = (
        "weights only"
        if slots is None
        else f"weights, gradients, {slots} optimizer state tensor(s), the best epoch's copy"
        + (" and a checkpoint's host copy" if device.type == "cpu" else "")
    )
    raise AnnkitError(
        f"{what} needs at least {est.total / GB:,.1f} GB on {device}, and {limit / GB:,.1f} GB are available "
        f"({source}); nothing was loaded. The MLP {shape} has {est.params:,} parameters ({per}: "
        f"{est.state_bytes / GB:,.1f} GB at 4 bytes each), and a batch's activations take {est.activation_bytes / GB:,.1f} GB. "
        f"Use fewer or narrower hidden layers (model.hidden=[…]), a smaller batch (trainer.batch_size, "
        f"trainer.eval_batch_size), or a device with more memory."
    )


def widths_of(in_features: int, hidden: Sequence[int], outputs: int) -> list[int]:
    return [max(1, int(in_features)), *map(int, hidden), max(1, int(outputs))]


def planned_inputs(dataset: dict[str, Any]) -> tuple[int, int]:
    """(input features, outputs) a dataset config will give, known without reading its data — for a
    table, from its header line, and at least 1 output (the target's classes are not read yet)."""
    name = dataset["name"]
    if name in DATASETS:
        spec = DATASETS[name]
        return math.prod(spec.shape), len(dataset.get("classes") or spec.classes)
    if name in ("xor", "logic"):
        return 2, 1
    if name == "playground":
        return len(dataset["features"]), 1
    if dataset.get("features"):
        return len(dataset["features"]), 1
    try:
        columns = csv_columns(dataset.get("path") or dataset.get("train"), dataset["delimiter"])
    except (AnnkitError, TypeError):
        return 1, 1  # the loader explains what is wrong with the file
    targets = dataset["target"] if isinstance(dataset["target"], list) else [dataset["target"]]
    return max(1, len(columns) - len(targets) - (dataset.get("sample_weight") in columns)), 1
