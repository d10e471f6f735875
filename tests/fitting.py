"""``fit`` with every setting as a keyword, for tests that build a loop by hand (the library groups them into a
:class:`~annkit.loop.Step`, a :class:`~annkit.loop.Policy` and a :class:`~annkit.loop.Schedule`)."""

from __future__ import annotations

from typing import Any

from annkit.fit_state import EarlyStopping, FitResult
from annkit.loop import Policy, Schedule, Step, fit


def fit_with(model: Any, optimizer: Any, train: Any, val: Any, *, head: Any, prepare: Any, epochs: int,
             reduction: str = "mean", penalty: Any = None, autocast_dtype: Any = None, grad_clip: float | None = None,
             best_metric: str = "val/accuracy", early_stopping: EarlyStopping | None = None, log_every: int = 50,
             save_every: int | None = None, nan_policy: str = "stop", scheduler: Any = None,
             scheduler_interval: str = "step", **rest: Any) -> FitResult:  # fmt: skip
    step = Step(head, prepare, reduction=reduction, penalty=penalty, autocast_dtype=autocast_dtype, grad_clip=grad_clip)
    policy = Policy(epochs=epochs, best_metric=best_metric, early_stopping=early_stopping or EarlyStopping(),
                    log_every=log_every, save_every=save_every, nan_policy=nan_policy)  # fmt: skip
    schedule = Schedule(scheduler, scheduler_interval) if scheduler is not None else None
    return fit(model, optimizer, train, val, step, policy, schedule=schedule, **rest)
