"""The training loop: one step, one evaluation pass, and ``fit`` over epochs.

Pure functions of their arguments (no config reading). Costs per training step: one
forward/backward/optimizer step plus a handful of tiny device ops to accumulate the loss, the
penalty and the number of correct predictions; the host reads those sums once every
``log_every`` steps and once per epoch (the only host syncs).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from annkit.head import Head
from annkit.losses import LossFn, reduce_loss
from annkit.metrics import metric_mode, scalars

Batch = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]  # inputs, targets, per-sample weights
Batches = Iterable[Batch]
Prepare = Callable[[torch.Tensor, bool], torch.Tensor]  # (raw batch, train?) → model input
Penalty = Callable[[], torch.Tensor]  # () → the scalar regularisation term (L1/L2 on the weights)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass (None: full fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class Running:
    """Σ loss·n, Σ penalty·n and Σ hits over the training batches seen, as device scalars (no host
    sync to add). float32 sums are exact for hit counts up to 2²⁴ samples per epoch."""

    def __init__(self, device: torch.device, *, penalty: bool = False, hits: bool = True) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.penalty_sum = torch.zeros((), device=device) if penalty else None
        self.hit_sum = torch.zeros((), device=device) if hits else None
        self.count = 0  # known on the host from the batch shapes

    def add(self, loss: torch.Tensor, n: int, penalty: torch.Tensor | None = None, hits: torch.Tensor | None = None) -> None:
        self.loss_sum.add_(loss, alpha=n)
        if self.penalty_sum is not None and penalty is not None:
            self.penalty_sum.add_(penalty, alpha=n)
        if self.hit_sum is not None and hits is not None:
            self.hit_sum.add_(hits)
        self.count += n

    def sums(self) -> tuple[float, float, float, int]:
        """(Σ loss·n, Σ penalty·n, Σ hits, n) on the host: one host sync."""
        zero = self.loss_sum.new_zeros(())
        loss, penalty, hits = torch.stack([self.loss_sum, self.penalty_sum if self.penalty_sum is not None else zero,
                                           self.hit_sum if self.hit_sum is not None else zero]).tolist()
        return loss, penalty, hits, self.count

    def means(self, sums: tuple[float, float, float, int], since: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)) -> dict[str, float]:
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


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor | None = None,
    *,
    loss_fn: LossFn,
    reduction: str = "mean",
    penalty: Penalty | None = None,
    autocast_dtype: torch.dtype | None = None,
    grad_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """One gradient-descent step on a batch: minimise reduce(ℓ, w) + penalty.

    Returns (data loss, penalty or None, raw outputs), detached, on the device."""
    with autocast(x.device, autocast_dtype):
        outputs = model(x)
    data_loss = reduce_loss(loss_fn(outputs, y), w, reduction)
    reg = penalty() if penalty is not None else None
    optimizer.zero_grad(set_to_none=True)
    (data_loss if reg is None else data_loss + reg).backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return data_loss.detach(), None if reg is None else reg.detach(), outputs.detach()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    *,
    head: Head,
    prepare: Prepare,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """The task's metrics of ``model`` in eval mode (no dropout, BN running stats): the plain
    (unweighted, unsmoothed) loss plus accuracy, balanced accuracy, recall … (see annkit.metrics)."""
    was_training = model.training
    model.eval()
    loss_fn = head.loss_fn(train=False)
    scores = None
    try:
        for xb, yb, _ in batches:
            scores = scores or head.scores(yb.device)
            with autocast(yb.device, autocast_dtype):
                outputs = model(prepare(xb, False))
            scores.add(head.predict(outputs), yb, loss_fn(outputs, yb))
    finally:
        model.train(was_training)
    if scores is None:
        raise ValueError("evaluate() got no batches")
    return scores.compute()


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return value == value  # not NaN
    return value < best - min_delta if mode == "min" else value > best + min_delta


class Hook:
    """Receives the loop's events; subclasses override what they need (rich, TensorBoard, checkpoints).

    ``on_log`` gets the training means since the previous log point: ``loss`` (the weighted data
    loss), plus ``penalty`` when L1/L2 is on and ``accuracy`` when the task has one."""

    def on_fit_start(self, *, epochs: int, steps_per_epoch: int) -> None: ...
    def on_step(self, step: int) -> None: ...
    def on_log(self, *, step: int, epoch: int, lr: float, metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None: ...
    def on_fit_end(self) -> None: ...


@dataclass
class EarlyStopping:
    metric: str = "val/loss"
    patience: int | None = None  # None: never stop early
    min_delta: float = 0.0


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    best_val: dict[str, Any]  # the full validation report of the best epoch (recall per class, …)
    stopped_early: bool
    train_seconds: float
    samples_seen: int


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Batches,
    val_batches: Batches,
    *,
    head: Head,
    epochs: int,
    prepare: Prepare,
    reduction: str = "mean",
    penalty: Penalty | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "step",
    grad_clip: float | None = None,
    autocast_dtype: torch.dtype | None = None,
    best_metric: str = "val/accuracy",
    early_stopping: EarlyStopping | None = None,
    log_every: int = 50,
    hooks: Sequence[Hook] = (),
) -> FitResult:
    """Train for ``epochs`` passes over ``train_batches``, validating after each.

    Every epoch yields a row ``{"epoch", "step", "train/loss", ["train/penalty"],
    ["train/accuracy"], "val/<metric>" for each scalar of the task's report, "lr", "train_s",
    "epoch_s", "samples_per_s"}`` (``train_s``: the training pass; ``epoch_s``: with validation).
    ``train/*`` are running means over the epoch of the training objective (weighted, with
    dropout, augmentation, label smoothing); ``val/*`` come from :func:`evaluate` in eval mode.
    The weights of the epoch with the best ``best_metric`` are kept (``best_state``, on the device).
    """
    device = next(model.parameters()).device
    steps_per_epoch = len(train_batches)  # type: ignore[arg-type]
    loss_fn = head.loss_fn(train=True)
    best_mode = metric_mode(best_metric)
    stop = early_stopping or EarlyStopping()
    stop_mode = metric_mode(stop.metric)
    history: list[dict[str, float]] = []
    best_value: float | None = None
    stop_best: float | None = None
    best_epoch, bad_epochs, step, samples = 0, 0, 0, 0
    best_state: dict[str, torch.Tensor] = {}
    best_val: dict[str, Any] = {}
    stopped_early = False
    train_seconds = 0.0
    for hook in hooks:
        hook.on_fit_start(epochs=epochs, steps_per_epoch=steps_per_epoch)
    model.train()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        running = Running(device, penalty=penalty is not None, hits=head.task != "regression")
        logged = (0.0, 0.0, 0.0, 0)  # running.sums() at the last log line
        for xb, yb, wb in train_batches:
            loss, reg, outputs = train_step(
                model, optimizer, prepare(xb, True), yb, wb, loss_fn=loss_fn, reduction=reduction,
                penalty=penalty, autocast_dtype=autocast_dtype, grad_clip=grad_clip,
            )
            running.add(loss, yb.shape[0], reg, head.hits(outputs, yb))
            lr = current_lr(optimizer)
            if scheduler is not None and scheduler_interval == "step":
                scheduler.step()
            step += 1
            for hook in hooks:
                hook.on_step(step)
            if step % log_every == 0:
                sums = running.sums()  # host sync, once per log_every steps
                for hook in hooks:
                    hook.on_log(step=step, epoch=epoch, lr=lr, metrics=running.means(sums, logged))
                logged = sums
        sums = running.sums()  # the epoch's one host read
        epoch_train_s = time.perf_counter() - t0
        if sums[3] > logged[3]:  # steps since the last log line (all of them when an epoch < log_every)
            for hook in hooks:
                hook.on_log(step=step, epoch=epoch, lr=lr, metrics=running.means(sums, logged))
        train_seconds += epoch_train_s
        samples += running.count
        val = evaluate(model, val_batches, head=head, prepare=prepare, autocast_dtype=autocast_dtype)
        row: dict[str, float] = {"epoch": epoch, "step": step}
        row.update({f"train/{k}": v for k, v in running.means(sums).items()})
        row.update({f"val/{k}": v for k, v in scalars(val).items()})
        row.update(lr=lr, train_s=epoch_train_s, epoch_s=time.perf_counter() - t0, samples_per_s=running.count / epoch_train_s)
        if scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        history.append(row)
        is_best = improved(row[best_metric], best_value, best_mode)
        if is_best:
            best_value, best_epoch, best_val = row[best_metric], epoch, val
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for hook in hooks:
            hook.on_epoch_end(row, is_best=is_best)
        if improved(row[stop.metric], stop_best, stop_mode, stop.min_delta):
            stop_best, bad_epochs = row[stop.metric], 0
        else:
            bad_epochs += 1
        if stop.patience is not None and bad_epochs >= stop.patience:
            stopped_early = True
            break
    for hook in hooks:
        hook.on_fit_end()
    if not best_state:  # every epoch's metric was NaN: keep the last weights
        best_epoch, best_val = len(history), val
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best_state=best_state,
        best_val=best_val,
        stopped_early=stopped_early,
        train_seconds=train_seconds,
        samples_seen=samples,
    )
