"""The learning rate's one owner: given (``optimizer.lr=3e-3``) or found (``optimizer.lr=auto``: the LR range test
on the built model), decided once and passed on — to the optimizer, to the schedule (every scheduler value that
interpolated ``optimizer.lr``), and to the record of the run, which keeps what was asked beside what was used.
Also the scheduler itself (:func:`build_scheduler`), and the search's fingerprint (what a curve depends on).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from rich.console import Console

from annkit.config import one_cycle_peaks
from annkit.data import Batcher
from annkit.errors import AnnkitError
from annkit.loop import Schedule
from annkit.lr_finder import group_ratios, set_lr
from annkit.lr_report import publish, sweep_progress, train_command
from annkit.lr_search import Found, holdout_loss, search
from annkit.models import count_params, describe_model
from annkit.records import versions
from annkit.tasks.build import Built, reseeder, search_settings
from annkit.tracking import TensorBoardLogger


@dataclass(frozen=True)
class LearningRate:
    """The lr a run trains at, and how it came to be: ``asked`` is optimizer.lr as configured (a number, or
    "auto"); ``used`` the number; ``peak`` a one-cycle max_lr that followed optimizer.lr (the suggestion, or the
    top of the band with lr_find.one_cycle_peak=band_top); ``found`` the search, when there was one."""

    asked: float | str
    used: float
    peak: float
    found: Found | None = None

    def record(self) -> dict[str, Any]:
        """What the checkpoint, metrics.json and TensorBoard's config keep of it."""
        return {"asked": self.asked, "used": self.used, "one_cycle_peak": self.peak,
                "by": "lr-find" if self.found is not None else "config"}  # fmt: skip

    def apply(self, optimizer: torch.optim.Optimizer) -> None:
        """Every parameter group at ``used`` × its lr_mult (a no-op when the optimizer was built at it)."""
        set_lr(optimizer, self.used, group_ratios(optimizer))

    def config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``cfg`` that trains at this lr: optimizer.lr and every scheduler value "auto" filled in (a
        one-cycle max_lr with the peak). ``cfg`` itself, what was asked, is left as it is."""
        used = copy.deepcopy(cfg)
        used["optimizer"]["lr"] = self.used
        for key, value in list(used["scheduler"].items()):
            if value == "auto":
                used["scheduler"][key] = self.peak if key == "max_lr" else self.used
        return used


def given(cfg: dict[str, Any]) -> LearningRate:
    lr = float(cfg["optimizer"]["lr"])
    return LearningRate(cfg["optimizer"]["lr"], lr, lr)


def resumed(cfg: dict[str, Any], record: dict[str, Any] | None) -> LearningRate:
    """A resumed run's lr: the one its first part decided (its checkpoint's config holds the number)."""
    lr = float(cfg["optimizer"]["lr"])
    if record is None:  # a checkpoint written before the lr was recorded on its own
        return LearningRate(lr, lr, lr)
    return LearningRate(record["asked"], lr, float(record.get("one_cycle_peak", lr)))


def find(cfg: dict[str, Any], built: Built, console: Console, run_dir: Path, tensorboard: TensorBoardLogger | None,
         overrides: list[str] | None = None) -> Found:  # fmt: skip
    """The LR range test on ``built``'s model and optimizer (left exactly as they were), reported: lr_find.{json,
    csv,png}, the curves in TensorBoard, the table, and (given the command line's ``overrides``) the ``annkit
    train`` line that uses the suggestion."""
    settings, seed = search_settings(cfg)
    model, optimizer, rng = built.network.model, built.network.optimizer, built.machine.rng
    holdout = None
    if settings.holdout_batches:  # the same fixed validation samples at each call, in training-sized batches
        val = built.problem.data.val
        holdout = holdout_loss(model, Batcher(val.x, val.y, cfg["trainer"]["batch_size"]), built.step,
                               settings.holdout_batches)  # fmt: skip
    with sweep_progress(console, settings.repeats * settings.steps) as on_rung:
        found = search(model, optimizer, built.problem.train, built.step, settings, seed=seed,
                       reseed=reseeder(cfg, rng), generators=[rng], holdout=holdout,
                       fingerprint=fingerprint(cfg, built), on_rung=on_rung)  # fmt: skip
    command = train_command(overrides, found.suggestion) if overrides is not None and found.suggestion else None
    publish(found, console, run_dir, tensorboard, command)
    return found


def chosen(cfg: dict[str, Any], found: Found) -> LearningRate:
    """optimizer.lr=auto: train at the suggestion (refused in one paragraph when there is none)."""
    if found.suggestion is None:
        problems = " ".join(found.diagnostics.values())
        raise AnnkitError(
            f"optimizer.lr=auto: the LR range test found no learning rate to train with. {problems} Set the learning "
            f"rate by hand (optimizer.lr=<value>), or look at the curve first: `annkit lr-find` with the same overrides "
            f"writes lr_find.png."
        )
    one_cycle = str(cfg["scheduler"].get("_target_", "")).endswith("OneCycleLR")
    peak = found.peak(top_of_band=one_cycle and cfg["lr_find"]["one_cycle_peak"] == "band_top")
    return LearningRate("auto", found.suggestion, peak, found)


def fingerprint(cfg: dict[str, Any], built: Built) -> dict[str, Any]:
    """What a curve depends on, recorded beside it so curves are compared only when they match."""
    params, _ = count_params(built.network.model)
    return {
        "model": describe_model(built.network.model.spec),
        "params": params,
        "optimizer": type(built.network.optimizer).__name__,
        "optimizer_args": {k: v for k, v in cfg["optimizer"].items() if not k.startswith("_") and k != "lr"},
        "batch_size": cfg["trainer"]["batch_size"],
        "dataset": cfg["dataset"]["name"],
        "train_samples": len(built.problem.data.train),
        "loss": cfg["loss"],
        "precision": "bf16" if built.machine.amp else "fp32",
        "device": str(built.machine.device),
        "seed": cfg["trainer"]["seed"],
        "annkit": versions()["annkit"],
        "torch": torch.__version__,
    }


def max_lr_text(value: Any) -> str:
    """A one-cycle max_lr as the header shows it: one number, or one per parameter group."""
    return ", ".join(f"{v:g}" for v in value) if isinstance(value, (list, tuple)) else f"{value:g}"


def build_scheduler(
    spec: dict[str, Any], optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, str]:
    """The scheduler of ``spec`` (validated, resolved, its "auto" values filled by :meth:`LearningRate.config`)
    and its interval (step | epoch).

    annkit passes the length of the schedule: ``total_steps`` (OneCycleLR) or ``T_max``
    (CosineAnnealingLR) = epochs × steps per epoch, or epochs when ``interval=epoch``. With
    several parameter groups (``optimizer.head_lr_mult``), OneCycleLR's max_lr becomes one per
    group, scaled by each group's ``lr_mult``; a list gives one per group itself. A one-cycle schedule too short to
    warm up is refused, or, with ``if_too_short: constant`` (scheduler=auto), left out: a constant lr.
    """
    spec = dict(spec)
    interval = spec.pop("interval")
    too_short = spec.pop("if_too_short", "refuse")
    if spec.get("_target_") is None or epochs == 0:  # trainer.epochs=0 takes no step
        return None, interval
    length = epochs * steps_per_epoch if interval == "step" else epochs
    cls = get_class(spec["_target_"])
    params = inspect.signature(cls).parameters
    filled: dict[str, Any] = {name: length for name in ("total_steps", "T_max") if name in params}
    if issubclass(cls, torch.optim.lr_scheduler.OneCycleLR):
        filled.update(_one_cycle_peaks(spec, optimizer))
        # torch's one-cycle needs a warm-up phase of ≥ 1 whole step: pct_start·total ≥ 2, else it divides by 0
        pct = spec.get("pct_start", params["pct_start"].default)
        if pct * length < 2 and too_short == "constant":
            return None, interval  # scheduler=auto: a constant lr (the header says why)
        if pct * length < 2:
            unit = "steps" if interval == "step" else "epochs"
            raise AnnkitError(
                f"scheduler=onecycle cannot warm up over this run: pct_start {pct:g} × {length} {unit} = "
                f"{pct * length:g}, and it needs at least 2 (one whole warm-up step). The run has {epochs} "
                f"epoch(s) of {steps_per_epoch} batch(es). Train longer (trainer.epochs, dataset.limit_train), "
                f"use smaller batches (trainer.batch_size), raise scheduler.pct_start, or use scheduler=auto (a "
                f"constant lr for runs this short), scheduler=none or scheduler=cosine."
            )
    return instantiate(spec, _convert_="all")(optimizer, **filled), interval


def _one_cycle_peaks(spec: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """OneCycleLR's max_lr, one per parameter group where there are several (:func:`annkit.config.one_cycle_peaks`),
    popped from ``spec``."""
    peaks = one_cycle_peaks(spec.get("max_lr"), [g.get("lr_mult", 1.0) for g in optimizer.param_groups])
    if peaks is None:
        return {}
    spec.pop("max_lr")
    return {"max_lr": peaks}


def schedule_of(scheduler: torch.optim.lr_scheduler.LRScheduler | None, interval: str) -> Schedule | None:
    return None if scheduler is None else Schedule(scheduler, interval)
