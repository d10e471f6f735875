"""The training loop: one step, one evaluation pass, and ``fit`` over epochs.

Pure functions of their arguments (no config reading). Costs per training step: one
forward/backward/optimizer step plus a handful of tiny device ops to accumulate the loss and
the number of correct predictions; the host reads those sums once every ``log_every`` steps
and once per epoch (the only host syncs).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from annkit.losses import LossFn, reduce_loss

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
Prepare = Callable[[torch.Tensor, bool], torch.Tensor]  # (raw batch, train?) → model input


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass (None: full fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class Running:
    """Σ loss·n and Σ correct over the batches seen, as device tensors (no host sync to add)."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.count = 0  # known on the host from the batch shapes

    def add(self, mean_loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        n = target.shape[0]
        self.loss_sum.add_(mean_loss.float(), alpha=n)
        self.correct.add_((logits.argmax(dim=1) == target).sum())
        self.count += n

    def sums(self) -> tuple[float, float, int]:
        """(Σ loss·n, Σ correct, n) on the host: one host sync."""
        loss_sum, correct = torch.stack([self.loss_sum, self.correct.float()]).tolist()
        return loss_sum, correct, self.count

    def read(self) -> dict[str, float]:
        """Mean loss and accuracy so far: one host sync."""
        return means(self.sums())


def means(sums: tuple[float, float, int], since: tuple[float, float, int] = (0.0, 0.0, 0)) -> dict[str, float]:
    """Mean loss and accuracy between two readings of :meth:`Running.sums`."""
    n = sums[2] - since[2]
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan")}
    return {"loss": (sums[0] - since[0]) / n, "accuracy": (sums[1] - since[1]) / n}


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_fn: LossFn,
    autocast_dtype: torch.dtype | None = None,
    grad_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradient-descent step on a batch. Returns (mean loss, logits), detached, on the device."""
    with autocast(x.device, autocast_dtype):
        logits = model(x)
    loss = reduce_loss(loss_fn(logits, y))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach(), logits.detach()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    *,
    loss_fn: LossFn,
    prepare: Prepare,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` (in eval mode: no dropout, BN running stats)."""
    was_training = model.training
    model.eval()
    running: Running | None = None
    try:
        for xb, yb in batches:
            running = running or Running(yb.device)
            with autocast(yb.device, autocast_dtype):
                logits = model(prepare(xb, False))
            running.add(reduce_loss(loss_fn(logits, yb)), logits, yb)
    finally:
        model.train(was_training)
    if running is None:
        raise ValueError("evaluate() got no batches")
    return running.read()


def metric_mode(name: str) -> str:
    """'max' for accuracies (higher is better), 'min' for losses."""
    return "max" if name.endswith("accuracy") else "min"


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return value == value  # not NaN
    return value < best - min_delta if mode == "min" else value > best + min_delta


class Hook:
    """Receives the loop's events; subclasses override what they need (rich, TensorBoard, checkpoints)."""

    def on_fit_start(self, *, epochs: int, steps_per_epoch: int) -> None: ...
    def on_step(self, step: int) -> None: ...
    def on_log(self, *, step: int, epoch: int, lr: float, loss: float, accuracy: float) -> None: ...
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
    epochs: int,
    loss_fn: LossFn,
    eval_loss_fn: LossFn,
    prepare: Prepare,
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

    Every epoch yields a row ``{"epoch", "step", "train/loss", "train/accuracy", "val/loss",
    "val/accuracy", "lr", "train_s", "epoch_s", "samples_per_s"}`` (``train_s``: the training
    pass; ``epoch_s``: with validation). ``train/*`` are running means over the
    epoch of the training objective (with dropout, augmentation, label smoothing); ``val/*``
    use ``eval_loss_fn`` in eval mode. The weights of the epoch with the best ``best_metric``
    are kept (``best_state``, on the device).
    """
    device = next(model.parameters()).device
    steps_per_epoch = len(train_batches)  # type: ignore[arg-type]
    best_mode = metric_mode(best_metric)
    stop = early_stopping or EarlyStopping()
    stop_mode = metric_mode(stop.metric)
    history: list[dict[str, float]] = []
    best_value: float | None = None
    stop_best: float | None = None
    best_epoch, bad_epochs, step, samples = 0, 0, 0, 0
    best_state: dict[str, torch.Tensor] = {}
    stopped_early = False
    train_seconds = 0.0
    for hook in hooks:
        hook.on_fit_start(epochs=epochs, steps_per_epoch=steps_per_epoch)
    model.train()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        running = Running(device)
        logged = (0.0, 0.0, 0)  # running.sums() at the last log line
        for xb, yb in train_batches:
            loss, logits = train_step(
                model, optimizer, prepare(xb, True), yb,
                loss_fn=loss_fn, autocast_dtype=autocast_dtype, grad_clip=grad_clip,
            )
            running.add(loss, logits, yb)
            lr = current_lr(optimizer)
            if scheduler is not None and scheduler_interval == "step":
                scheduler.step()
            step += 1
            for hook in hooks:
                hook.on_step(step)
            if step % log_every == 0:
                sums = running.sums()  # host sync, once per log_every steps
                for hook in hooks:
                    hook.on_log(step=step, epoch=epoch, lr=lr, **means(sums, logged))
                logged = sums
        sums = running.sums()  # the epoch's one host read
        epoch_train_s = time.perf_counter() - t0
        train = means(sums)
        if sums[2] > logged[2]:  # steps since the last log line (all of them when an epoch < log_every)
            for hook in hooks:
                hook.on_log(step=step, epoch=epoch, lr=lr, **means(sums, logged))
        train_seconds += epoch_train_s
        samples += running.count
        val = evaluate(model, val_batches, loss_fn=eval_loss_fn, prepare=prepare, autocast_dtype=autocast_dtype)
        row = {
            "epoch": epoch,
            "step": step,
            "train/loss": train["loss"],
            "train/accuracy": train["accuracy"],
            "val/loss": val["loss"],
            "val/accuracy": val["accuracy"],
            "lr": lr,
            "train_s": epoch_train_s,
            "epoch_s": time.perf_counter() - t0,
            "samples_per_s": running.count / epoch_train_s,
        }
        if scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        history.append(row)
        is_best = improved(row[best_metric], best_value, best_mode)
        if is_best:
            best_value, best_epoch = row[best_metric], epoch
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
        best_epoch = len(history)
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best_state=best_state,
        stopped_early=stopped_early,
        train_seconds=train_seconds,
        samples_seen=samples,
    )
