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
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from annkit.fit_state import (
    NAN_POLICIES,
    DivergenceWatch,
    EarlyStopping,
    FitResult,
    FitState,
    Running,
    keep_best,
    out_of_patience,
    watch_patience,
)
from annkit.head import Head
from annkit.losses import LossFn, reduce_loss
from annkit.metrics import scalars
from annkit.models import eval_mode

Batch = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]  # inputs, targets, per-sample weights
Batches = Iterable[Batch]
Prepare = Callable[[torch.Tensor, bool], torch.Tensor]  # (raw batch, train?) → model input
Penalty = Callable[[], torch.Tensor]  # () → the scalar regularisation term (L1/L2 on the weights)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass (None: full fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


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
    loss_fn = head.loss_fn(train=False)
    scores = None
    with eval_mode(model):
        for xb, yb, _ in batches:
            scores = scores or head.scores(yb.device)
            with autocast(yb.device, autocast_dtype):
                outputs = model(prepare(xb, False))
            scores.add(head.predict(outputs), yb, loss_fn(outputs, yb))
    if scores is None:
        raise ValueError("evaluate() got no batches")
    return scores.compute()


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


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


@dataclass(frozen=True)
class Step:
    """One training step's recipe, all but the module, the optimizer and the batch: the head (loss, hits), the
    input preparation, the reduction, the L1/L2 penalty, autocast and gradient clipping. ``fit`` and the LR range
    test (:mod:`annkit.lr_search`) take the same one, so the finder sweeps exactly the step that training takes."""

    head: Head
    prepare: Prepare
    reduction: str = "mean"
    penalty: Penalty | None = None
    autocast_dtype: torch.dtype | None = None
    grad_clip: float | None = None
    criterion: LossFn | None = None  # instead of the head's training loss (the perceptron rule's criterion)
    loss_fn: LossFn = field(init=False, repr=False)  # the training loss, made once

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss_fn", self.criterion or self.head.loss_fn(train=True))

    def __call__(
        self, module: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, *, skip_nonfinite: bool = False
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """:func:`train_step` on a raw batch: (data loss or None when skipped, penalty or None, outputs)."""
        x, y, w = batch
        return train_step(
            module, optimizer, self.prepare(x, True), y, w, loss_fn=self.loss_fn,
            reduction=self.reduction, penalty=self.penalty, autocast_dtype=self.autocast_dtype,
            grad_clip=self.grad_clip, skip_nonfinite=skip_nonfinite,
        )  # fmt: skip

    def objective(self, module: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch) -> torch.Tensor:
        """One step, returning the objective it minimised: the weighted data loss plus the penalty."""
        loss, reg, _ = self(module, optimizer, batch)
        assert loss is not None  # nothing is skipped here
        return loss if reg is None else loss + reg

    def score(self, model: nn.Module, batches: Batches) -> dict[str, Any]:
        """:func:`evaluate` with this step's head, preparation and autocast."""
        return evaluate(model, batches, head=self.head, prepare=self.prepare, autocast_dtype=self.autocast_dtype)


@dataclass(frozen=True)
class Policy:
    """How ``fit`` runs: how long, which epoch's weights it keeps, when it stops early, how often the host reads
    the sums (``log_every``) and hooks may save mid-epoch (``save_every``), and what a NaN does (``nan_policy``)."""

    epochs: int
    best_metric: str = "val/accuracy"
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    log_every: int = 50
    save_every: int | None = None
    nan_policy: str = "stop"
    until_perfect: str | None = None  # a history key (train/accuracy): stop after an epoch where it reached 1

    def __post_init__(self) -> None:
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, not {self.nan_policy!r}")


@dataclass(frozen=True)
class Schedule:
    """A torch LR scheduler and when it steps: after every training step, or after every epoch."""

    scheduler: torch.optim.lr_scheduler.LRScheduler
    interval: str = "step"


@dataclass(frozen=True)
class Collective:
    """Training over processes (:mod:`annkit.distributed`): ``reduce`` sums the running sums over the ranks at
    each host read; ``sync`` runs before each evaluation (rank 0's batch-norm buffers everywhere)."""

    reduce: Callable[[torch.Tensor], torch.Tensor]
    sync: Callable[[], None]


@dataclass
class _Run:
    """The fixed parts of one ``fit`` call, handed to its epoch and bookkeeping functions."""

    model: nn.Module
    device: torch.device
    train_module: nn.Module  # what the training steps call: the model, its DDP wrapper or torch.compile(model)
    optimizer: torch.optim.Optimizer
    train_batches: Any
    val_batches: Batches
    step: Step
    policy: Policy
    schedule: Schedule | None
    hooks: Sequence[Hook]
    should_stop: Callable[[], bool]
    collective: Collective | None
    watch: DivergenceWatch
    last_val: dict[str, Any]  # the last epoch's validation report

    def each(self, event: str, *args: Any, **kwargs: Any) -> None:
        for hook in self.hooks:
            getattr(hook, event)(*args, **kwargs)


def _start_epoch(run: _Run, st: FitState) -> Running:
    """The running sums of the epoch ``st`` is in: new ones (and a new order) at its start, else the saved ones."""
    device = run.device
    reduce = run.collective.reduce if run.collective is not None else None
    if st.batch:
        return Running.restore(device, st.running, reduce)
    st.perm = run.train_batches.permutation()
    st.logged, st.epoch_s = [0.0, 0.0, 0.0, 0], 0.0
    return Running(device, penalty=run.step.penalty is not None, hits=run.step.head.task != "regression", reduce=reduce)


def _train_epoch(run: _Run, st: FitState, running: Running, epoch: int, t0: float) -> str:
    """The training steps of one epoch, from ``st.batch`` on (``t0``: when it started, on the perf_counter clock):
    "done", "interrupted" or "diverged"."""
    policy, skip = run.policy, run.policy.nan_policy == "skip_batch"
    for xb, yb, wb in run.train_batches.epoch(st.perm, st.batch):
        loss, reg, outputs = run.step(run.train_module, run.optimizer, (xb, yb, wb), skip_nonfinite=skip)
        if loss is None:
            st.skipped += 1
        else:
            running.add(loss, yb.shape[0], reg, run.step.head.hits(outputs, yb))
        st.lr = current_lr(run.optimizer)
        run.watch.record(None if skip else loss, st.lr)
        if run.schedule is not None and run.schedule.interval == "step":
            run.schedule.scheduler.step()
        st.step, st.batch, st.running["count"] = st.step + 1, st.batch + 1, running.count
        st.epoch_s = time.perf_counter() - t0
        save_point = policy.save_every is not None and st.step % policy.save_every == 0
        if st.step % policy.log_every == 0 or save_point:
            sums = run.watch.read(running, st.step, epoch)  # host sync, once per log_every (or save_every) steps
            if sums is None:
                return "diverged"
            if st.step % policy.log_every == 0:
                run.each("on_log", step=st.step, epoch=epoch, lr=st.lr, metrics=running.means(sums, tuple(st.logged)))
                st.logged = list(sums)
            if save_point:
                run.each("on_save_point", st.step)
        run.each("on_step", st.step)
        if run.should_stop():
            return "interrupted" if run.watch.read(running, st.step, epoch) is not None else "diverged"
    return "done"


def _close_epoch(run: _Run, st: FitState, running: Running, epoch: int, t0: float) -> bool:
    """The end-of-epoch bookkeeping after the epoch's one host read: the last log line, validation, the row, the
    scheduler's epoch step, the best weights, early stopping, the hooks. False when the loss was not finite."""
    sums = run.watch.read(running, st.step, epoch)  # the epoch's one host read
    if sums is None:
        return False
    train_s = time.perf_counter() - t0  # after the read: the device's queue of steps included
    if sums[3] == 0:  # every batch was skipped (nan_policy=skip_batch)
        run.watch.diverged = {"step": st.step, "epoch": epoch, "batch": len(run.train_batches), "lr": st.lr,
                              "loss": math.nan, "all_skipped": True}  # fmt: skip
        return False
    if sums[3] > st.logged[3]:  # steps since the last log line (all of them when an epoch < log_every)
        run.each("on_log", step=st.step, epoch=epoch, lr=st.lr, metrics=running.means(sums, tuple(st.logged)))
    st.train_seconds += train_s
    st.samples += sums[3]  # every rank's samples
    if run.collective is not None:
        run.collective.sync()  # DDP: every rank scores the same model
    val = run.last_val = run.step.score(run.model, run.val_batches)
    run.each("on_eval", epoch, val)
    row: dict[str, float] = {"epoch": epoch, "step": st.step}
    row.update({f"train/{k}": v for k, v in running.means(sums).items()})
    row.update({f"val/{k}": v for k, v in scalars(val).items()})
    row.update(lr=st.lr, train_s=train_s, epoch_s=time.perf_counter() - t0, samples_per_s=sums[3] / train_s)
    if run.schedule is not None and run.schedule.interval == "epoch":
        run.schedule.scheduler.step()
    st.history.append(row)
    st.epoch, st.batch, st.perm, st.running, st.epoch_s = epoch, 0, None, None, 0.0
    is_best = keep_best(st, row, val, run.model, run.policy.best_metric)
    watch_patience(st, row, run.policy.early_stopping)
    run.each("on_epoch_end", row, is_best=is_best)
    return True


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Any,
    val_batches: Batches,
    step: Step,
    policy: Policy,
    *,
    schedule: Schedule | None = None,
    hooks: Sequence[Hook] = (),
    state: FitState | None = None,
    should_stop: Callable[[], bool] | None = None,
    collective: Collective | None = None,
    train_module: nn.Module | None = None,
) -> FitResult:
    """Train for ``policy.epochs`` passes over ``train_batches`` (a :class:`~annkit.data.Batcher`), validating after
    each with ``step.score``, and keep the weights of the epoch with the best ``policy.best_metric``.

    Every epoch yields a row ``{"epoch", "step", "train/loss", ["train/penalty"], ["train/accuracy"],
    "val/<metric>" for each scalar of the task's report, "lr", "train_s", "epoch_s", "samples_per_s"}``
    (``train_s``: the training pass; ``epoch_s``: with validation). ``train/*`` are running means over the epoch
    of the training objective (weighted, with dropout, augmentation, label smoothing); ``val/*`` come from
    :func:`evaluate` in eval mode.

    ``state`` (a :class:`FitState`, updated in place after every step) starts the loop where an earlier one
    stopped, mid-epoch included. Every ``policy.save_every`` steps, after a host read found the loss finite,
    hooks get ``on_save_point``. ``should_stop`` (a host flag, set by a signal handler) is asked after every
    step and epoch; when it says yes, ``fit`` returns at once with ``interrupted``. ``nan_policy=stop`` finds a
    NaN/±inf loss at the next host read (:class:`DivergenceWatch`) and returns with ``diverged`` before any hook
    sees a non-finite epoch; ``skip_batch`` takes no step on such a batch (a host read per step).

    ``train_module`` is what training steps call instead of ``model`` (its DistributedDataParallel wrapper, or
    ``torch.compile(model)``); evaluation and the kept weights use ``model``. ``collective``: over processes,
    ``train_batches`` is the rank's shard, and samples and samples/s count every rank's samples.
    """
    st = state if state is not None else FitState()
    device = next(model.parameters()).device
    run = _Run(model, device, model if train_module is None else train_module, optimizer, train_batches, val_batches, step, policy, schedule,
               hooks, should_stop or (lambda: False), collective,
               DivergenceWatch(policy.log_every, device, len(train_batches)), st.best_val)  # fmt: skip
    stop = policy.early_stopping
    stopped_early = out_of_patience(st, stop) or perfect(st, policy)  # a resumed run that had stopped stays stopped
    outcome = "done"
    run.each("on_fit_start", epochs=policy.epochs, steps_per_epoch=len(train_batches))
    model.train()
    while st.epoch < policy.epochs and not stopped_early:
        epoch = st.epoch + 1
        running = _start_epoch(run, st)
        st.running = running.state()  # the same device tensors: always current
        t0 = time.perf_counter() - st.epoch_s
        outcome = _train_epoch(run, st, running, epoch, t0)
        if outcome != "done" or not _close_epoch(run, st, running, epoch, t0):
            break
        stopped_early = out_of_patience(st, stop) or perfect(st, policy)
        if run.should_stop() and st.epoch < policy.epochs and not stopped_early:
            outcome = "interrupted"
            break
    run.each("on_fit_end")
    return _result(st, run, stopped_early, outcome == "interrupted")


def perfect(st: FitState, policy: Policy) -> bool:
    """``policy.until_perfect``: the last epoch's value of that key reached 1 (the perceptron: no mistake, so no
    update, in a whole epoch)."""
    return policy.until_perfect is not None and bool(st.history) and st.history[-1][policy.until_perfect] >= 1.0


def _result(st: FitState, run: _Run, stopped_early: bool, interrupted: bool) -> FitResult:
    best_state, best_epoch, best_val = st.best_state, st.best_epoch, st.best_val
    if not best_state and not st.history:  # epochs=0: nothing trained; the starting weights, scored
        best_epoch, best_val = 0, run.step.score(run.model, run.val_batches)
        best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    elif not best_state:  # every epoch's metric was NaN: keep the last weights
        best_epoch, best_val = len(st.history), run.last_val
        best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    return FitResult(
        history=st.history, best_epoch=best_epoch, best_state=best_state, best_val=best_val,
        stopped_early=stopped_early, train_seconds=st.train_seconds, samples_seen=st.samples, skipped=st.skipped,
        interrupted=interrupted, diverged=run.watch.diverged,
    )  # fmt: skip
