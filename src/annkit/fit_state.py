"""What ``fit`` counts and keeps (:mod:`annkit.loop`): the running sums of an epoch on the device, the state
between two steps that a checkpoint stores (:class:`FitState`), the result, the divergence watch, and the
bookkeeping of the best epoch and of early stopping's patience."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from annkit.metrics import metric_mode


class Running:
    """Σ loss·n, Σ penalty·n and Σ hits over the training batches seen, as device scalars (no host
    sync to add). float32 sums are exact for hit counts up to 2²⁴ samples per epoch."""

    def __init__(
        self,
        device: torch.device,
        *,
        penalty: bool = False,
        hits: bool = True,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.reduce = reduce  # DDP: the sums over every rank (an all-reduce at each host read)
        self.loss_sum = torch.zeros((), device=device)
        self.penalty_sum = torch.zeros((), device=device) if penalty else None
        self.hit_sum = torch.zeros((), device=device) if hits else None
        self.count = 0  # known on the host from the batch shapes

    def state(self) -> dict[str, Any]:
        """The sums as they are (device tensors) and the count: what a mid-epoch checkpoint keeps."""
        return {
            "loss_sum": self.loss_sum,
            "penalty_sum": self.penalty_sum,
            "hit_sum": self.hit_sum,
            "count": self.count,
        }

    @classmethod
    def restore(
        cls, device: torch.device, state: dict[str, Any], reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> Running:
        running = cls(
            device, penalty=state["penalty_sum"] is not None, hits=state["hit_sum"] is not None, reduce=reduce
        )
        for name in ("loss_sum", "penalty_sum", "hit_sum"):
            if state[name] is not None:
                setattr(running, name, state[name].to(device, copy=True))
        running.count = int(state["count"])
        return running

    def add(
        self, loss: torch.Tensor, n: int, penalty: torch.Tensor | None = None, hits: torch.Tensor | None = None
    ) -> None:
        self.loss_sum.add_(loss, alpha=n)
        if self.penalty_sum is not None and penalty is not None:
            self.penalty_sum.add_(penalty, alpha=n)
        if self.hit_sum is not None and hits is not None:
            self.hit_sum.add_(hits)
        self.count += n

    def sums(self) -> tuple[float, float, float, int]:
        """(Σ loss·n, Σ penalty·n, Σ hits, n) on the host: one host sync (over every rank with ``reduce``)."""
        zero = self.loss_sum.new_zeros(())
        parts = [
            self.loss_sum,
            self.penalty_sum if self.penalty_sum is not None else zero,
            self.hit_sum if self.hit_sum is not None else zero,
        ]
        if self.reduce is None:
            loss, penalty, hits = torch.stack(parts).tolist()
            return loss, penalty, hits, self.count
        loss, penalty, hits, count = self.reduce(torch.stack([*parts, zero + self.count])).tolist()
        return loss, penalty, hits, round(count)

    def means(
        self, sums: tuple[float, float, float, int], since: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)
    ) -> dict[str, float]:
        """Mean loss (and penalty, accuracy when tracked) between two readings of :meth:`sums`."""
        n = sums[3] - since[3]
        nan = float("nan")
        out = {"loss": (sums[0] - since[0]) / n if n else nan}
        if self.penalty_sum is not None:
            out["penalty"] = (sums[1] - since[1]) / n if n else nan
        if self.hit_sum is not None:
            out["accuracy"] = (sums[2] - since[2]) / n if n else nan
        return out

    def read(self) -> dict[str, float]:
        """Means so far: one host sync."""
        return self.means(self.sums())


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return value == value  # not NaN
    return value < best - min_delta if mode == "min" else value > best + min_delta


@dataclass
class EarlyStopping:
    metric: str = "val/loss"
    patience: int | None = None  # None: never stop early
    min_delta: float = 0.0


NAN_POLICIES = ("stop", "skip_batch")


@dataclass
class FitState:
    """Where :func:`fit` is, and all it needs to go on from there exactly (mid-epoch included).

    ``fit`` updates it in place after every step, so a checkpoint written by a hook, or after an
    interrupt, stores the run between two steps. A mid-epoch state keeps the epoch's permutation,
    the number of batches done, the running sums and the sums at the last log line."""

    epoch: int = 0  # finished epochs
    step: int = 0  # training steps taken (skipped batches included: the schedule advances)
    batch: int = 0  # batches done in the unfinished epoch ``epoch + 1``
    perm: torch.Tensor | None = None  # the unfinished epoch's order (None: not started, or not shuffled)
    running: dict[str, Any] | None = None  # Running.state() of the unfinished epoch
    logged: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0])  # its sums at the last log line
    lr: float = math.nan  # the lr of the last step taken
    epoch_s: float = 0.0  # training seconds of the unfinished epoch so far
    history: list[dict[str, float]] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int = 0
    best_val: dict[str, Any] = field(default_factory=dict)  # the best epoch's full validation report
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)  # its weights
    stop_best: float | None = None
    bad_epochs: int = 0
    samples: int = 0
    train_seconds: float = 0.0
    skipped: int = 0  # batches skipped by nan_policy=skip_batch

    def tree(self) -> dict[str, Any]:
        """The fields as a plain dict (tensors included, not copied) for a checkpoint."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> FitState:
        return cls(**tree)


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    best_val: dict[str, Any]  # the full validation report of the best epoch (recall per class, …)
    stopped_early: bool
    train_seconds: float
    samples_seen: int
    skipped: int = 0
    interrupted: bool = False  # should_stop() said so: the state is between two steps, ready to save
    diverged: dict[str, Any] | None = None  # nan_policy=stop: where the loss stopped being finite


class DivergenceWatch:
    """Finds a non-finite loss at a host read and pins it to its step.

    Between two reads the step losses go into a device buffer (no sync) and their lrs into a host list; a read
    whose sums are not finite looks the first bad one up and records where it happened in ``diverged``."""

    def __init__(self, size: int, device: torch.device, steps_per_epoch: int) -> None:
        self.recent = torch.empty(size, device=device)
        self.lrs: list[float] = []
        self.steps_per_epoch = steps_per_epoch
        self.diverged: dict[str, Any] | None = None

    def record(self, loss: torch.Tensor | None, lr: float) -> None:
        if loss is not None:
            self.recent[len(self.lrs)] = loss
        self.lrs.append(lr)

    def read(self, running: Running, step: int, epoch: int) -> tuple[float, float, float, int] | None:
        """The running sums (one host sync); None when a non-finite loss entered them (``diverged`` set)."""
        sums = running.sums()
        if math.isfinite(sums[0]) and math.isfinite(sums[1]):
            self.lrs.clear()
            return sums
        losses = self.recent[: len(self.lrs)].tolist()
        first = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses) - 1)
        at = step - len(self.lrs) + first + 1
        self.diverged = {"step": at, "epoch": epoch, "batch": at - (epoch - 1) * self.steps_per_epoch,
                         "lr": self.lrs[first], "loss": losses[first]}  # fmt: skip
        return None


def keep_best(st: FitState, row: dict[str, float], val: dict[str, Any], model: nn.Module, metric: str) -> bool:
    """Whether this epoch is the best so far by ``metric``; if so its report and weights are kept in ``st``."""
    if not improved(row[metric], st.best_value, metric_mode(metric)):
        return False
    st.best_value, st.best_epoch, st.best_val = row[metric], row["epoch"], val
    st.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return True


def watch_patience(st: FitState, row: dict[str, float], stop: EarlyStopping) -> None:
    """Count the epochs since ``stop.metric`` last improved by more than ``stop.min_delta``."""
    if improved(row[stop.metric], st.stop_best, metric_mode(stop.metric), stop.min_delta):
        st.stop_best, st.bad_epochs = row[stop.metric], 0
    else:
        st.bad_epochs += 1


def out_of_patience(st: FitState, stop: EarlyStopping) -> bool:
    return stop.patience is not None and st.bad_epochs >= stop.patience
