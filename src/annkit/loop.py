"""The training loop: one step, one evaluation pass, and ``fit`` over epochs.

Pure functions of their arguments (no config reading). Costs per training step: one
forward/backward/optimizer step plus a handful of tiny device ops to accumulate the loss, the
penalty and the number of correct predictions; the host reads those sums once every
``log_every`` steps and once per epoch (the only host syncs).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
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
    skip_nonfinite: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """One gradient-descent step on a batch: minimise reduce(ℓ, w) + penalty.

    Returns (data loss, penalty or None, raw outputs), detached, on the device. With
    ``skip_nonfinite`` a NaN/±inf objective takes no step and returns None as the loss; that check
    reads the loss on the host (one sync per step, as AMP's GradScaler does)."""
    with autocast(x.device, autocast_dtype):
        outputs = model(x)
    data_loss = reduce_loss(loss_fn(outputs, y), w, reduction)
    reg = penalty() if penalty is not None else None
    objective = data_loss if reg is None else data_loss + reg
    optimizer.zero_grad(set_to_none=True)
    if skip_nonfinite and not bool(torch.isfinite(objective.detach())):
        return None, None, outputs.detach()
    objective.backward()
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

    ``on_save_point`` comes every ``save_every`` steps, when the state between two steps is known
    to be finite. ``on_log`` gets the training means since the previous log point: ``loss`` (the weighted data
    loss), plus ``penalty`` when L1/L2 is on and ``accuracy`` when the task has one. ``on_eval`` gets each
    epoch's full validation report (confusion matrix, per-class numbers) before ``on_epoch_end``."""

    def on_fit_start(self, *, epochs: int, steps_per_epoch: int) -> None: ...
    def on_step(self, step: int) -> None: ...
    def on_save_point(self, step: int) -> None: ...
    def on_log(self, *, step: int, epoch: int, lr: float, metrics: dict[str, float]) -> None: ...
    def on_eval(self, epoch: int, report: dict[str, Any]) -> None: ...
    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None: ...
    def on_fit_end(self) -> None: ...


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


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Any,
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
    state: FitState | None = None,
    nan_policy: str = "stop",
    should_stop: Callable[[], bool] | None = None,
    save_every: int | None = None,
    train_module: nn.Module | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    sync: Callable[[], None] | None = None,
) -> FitResult:
    """Train for ``epochs`` passes over ``train_batches`` (a :class:`~annkit.data.Batcher`), validating after each.

    Every epoch yields a row ``{"epoch", "step", "train/loss", ["train/penalty"],
    ["train/accuracy"], "val/<metric>" for each scalar of the task's report, "lr", "train_s",
    "epoch_s", "samples_per_s"}`` (``train_s``: the training pass; ``epoch_s``: with validation).
    ``train/*`` are running means over the epoch of the training objective (weighted, with
    dropout, augmentation, label smoothing); ``val/*`` come from :func:`evaluate` in eval mode.
    The weights of the epoch with the best ``best_metric`` are kept (``best_state``, on the device).

    ``state`` (a :class:`FitState`, updated in place) starts the loop where an earlier one stopped.
    Every ``save_every`` steps, after a host read found the loss finite, hooks get ``on_save_point``
    (a checkpoint mid-epoch).
    ``should_stop`` is asked after every step and every epoch (a host flag, set by a signal
    handler); when it says yes, ``fit`` returns at once with ``interrupted``. ``nan_policy``:
    ``stop`` finds a NaN/±inf loss at the next host read (every ``log_every`` steps and at the
    epoch's end; the step is pinned from a device buffer of the interval's losses) and returns with
    ``diverged`` before any hook sees a non-finite epoch; ``skip_batch`` takes no step on such a
    batch (a host read per step) and counts it in ``skipped``.

    ``train_module`` is what training steps call instead of ``model`` (its DistributedDataParallel
    wrapper, or ``torch.compile(model)``); evaluation and the kept weights use ``model`` itself.
    Over processes (:mod:`annkit.distributed`): ``reduce`` sums the training sums over the ranks
    at each host read, and ``sync`` runs before each evaluation; ``train_batches`` is the rank's
    shard. Samples and samples/s count every rank's samples.
    """
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, not {nan_policy!r}")
    device = next(model.parameters()).device
    steps_per_epoch = len(train_batches)
    loss_fn = head.loss_fn(train=True)
    best_mode = metric_mode(best_metric)
    stop = early_stopping or EarlyStopping()
    stop_mode = metric_mode(stop.metric)
    st = state if state is not None else FitState()
    skip = nan_policy == "skip_batch"
    recent = torch.empty(log_every, device=device)  # this read interval's losses: pins a NaN's step
    lrs: list[float] = []  # and their learning rates
    val: dict[str, Any] = st.best_val
    # a resumed state that had already run out of patience stays stopped
    result_flags: dict[str, Any] = {
        "stopped_early": stop.patience is not None and st.bad_epochs >= stop.patience,
        "interrupted": False,
        "diverged": None,
    }

    def read(running: Running, epoch: int) -> tuple[float, float, float, int] | None:
        """The running sums (one host sync); None when a non-finite loss entered them (``diverged`` set)."""
        sums = running.sums()
        if math.isfinite(sums[0]) and math.isfinite(sums[1]):
            lrs.clear()
            return sums
        losses = recent[: len(lrs)].tolist()
        first = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses) - 1)
        at = st.step - len(lrs) + first + 1
        result_flags["diverged"] = {
            "step": at,
            "epoch": epoch,
            "batch": at - (epoch - 1) * steps_per_epoch,
            "lr": lrs[first],
            "loss": losses[first],
        }
        return None

    stepper = model if train_module is None else train_module  # what the training steps call
    for hook in hooks:
        hook.on_fit_start(epochs=epochs, steps_per_epoch=steps_per_epoch)
    model.train()
    while st.epoch < epochs and not result_flags["stopped_early"]:
        epoch = st.epoch + 1
        if st.batch == 0:  # a new epoch (else: go on with the saved one)
            st.perm = train_batches.permutation()
            running = Running(device, penalty=penalty is not None, hits=head.task != "regression", reduce=reduce)
            st.logged, st.epoch_s = [0.0, 0.0, 0.0, 0], 0.0
        else:
            running = Running.restore(device, st.running, reduce)
        st.running = running.state()  # the same device tensors: always current
        t0 = time.perf_counter() - st.epoch_s
        for xb, yb, wb in train_batches.epoch(st.perm, st.batch):
            loss, reg, outputs = train_step(
                stepper,
                optimizer,
                prepare(xb, True),
                yb,
                wb,
                loss_fn=loss_fn,
                reduction=reduction,
                penalty=penalty,
                autocast_dtype=autocast_dtype,
                grad_clip=grad_clip,
                skip_nonfinite=skip,
            )
            if loss is None:
                st.skipped += 1
            else:
                running.add(loss, yb.shape[0], reg, head.hits(outputs, yb))
                if not skip:
                    recent[len(lrs)] = loss
            st.lr = current_lr(optimizer)
            lrs.append(st.lr)
            if scheduler is not None and scheduler_interval == "step":
                scheduler.step()
            st.step += 1
            st.batch += 1
            st.running["count"] = running.count
            st.epoch_s = time.perf_counter() - t0
            save_point = save_every is not None and st.step % save_every == 0
            if st.step % log_every == 0 or save_point:
                sums = read(running, epoch)  # host sync, once per log_every (or save_every) steps
                if sums is None:
                    break
                if st.step % log_every == 0:
                    for hook in hooks:
                        hook.on_log(step=st.step, epoch=epoch, lr=st.lr, metrics=running.means(sums, tuple(st.logged)))
                    st.logged = list(sums)
                if save_point:
                    for hook in hooks:
                        hook.on_save_point(st.step)
            for hook in hooks:
                hook.on_step(st.step)
            if should_stop is not None and should_stop():
                if read(running, epoch) is not None:
                    result_flags["interrupted"] = True
                break
        if result_flags["diverged"] or result_flags["interrupted"]:
            break
        sums = read(running, epoch)  # the epoch's one host read
        if sums is None:
            break
        epoch_train_s = time.perf_counter() - t0
        if sums[3] == 0:  # every batch was skipped (nan_policy=skip_batch)
            result_flags["diverged"] = {
                "step": st.step,
                "epoch": epoch,
                "batch": steps_per_epoch,
                "lr": st.lr,
                "loss": math.nan,
                "all_skipped": True,
            }
            break
        if sums[3] > st.logged[3]:  # steps since the last log line (all of them when an epoch < log_every)
            for hook in hooks:
                hook.on_log(step=st.step, epoch=epoch, lr=st.lr, metrics=running.means(sums, tuple(st.logged)))
        st.train_seconds += epoch_train_s
        st.samples += sums[3]  # every rank's samples
        if sync is not None:
            sync()  # DDP: rank 0's batch-norm buffers everywhere, so every rank scores the same model
        val = evaluate(model, val_batches, head=head, prepare=prepare, autocast_dtype=autocast_dtype)
        for hook in hooks:
            hook.on_eval(epoch, val)
        row: dict[str, float] = {"epoch": epoch, "step": st.step}
        row.update({f"train/{k}": v for k, v in running.means(sums).items()})
        row.update({f"val/{k}": v for k, v in scalars(val).items()})
        row.update(
            lr=st.lr, train_s=epoch_train_s, epoch_s=time.perf_counter() - t0, samples_per_s=sums[3] / epoch_train_s
        )
        if scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        st.history.append(row)
        st.epoch, st.batch, st.perm, st.running, st.epoch_s = epoch, 0, None, None, 0.0
        is_best = improved(row[best_metric], st.best_value, best_mode)
        if is_best:
            st.best_value, st.best_epoch, st.best_val = row[best_metric], epoch, val
            st.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if improved(row[stop.metric], st.stop_best, stop_mode, stop.min_delta):
            st.stop_best, st.bad_epochs = row[stop.metric], 0
        else:
            st.bad_epochs += 1
        result_flags["stopped_early"] = stop.patience is not None and st.bad_epochs >= stop.patience
        for hook in hooks:
            hook.on_epoch_end(row, is_best=is_best)
        if should_stop is not None and should_stop() and st.epoch < epochs and not result_flags["stopped_early"]:
            result_flags["interrupted"] = True
            break
    for hook in hooks:
        hook.on_fit_end()
    best_state, best_epoch, best_val = st.best_state, st.best_epoch, st.best_val
    if not best_state and st.history:  # every epoch's metric was NaN: keep the last weights
        best_epoch, best_val = len(st.history), val
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return FitResult(
        history=st.history,
        best_epoch=best_epoch,
        best_state=best_state,
        best_val=best_val,
        train_seconds=st.train_seconds,
        samples_seen=st.samples,
        skipped=st.skipped,
        **result_flags,
    )
