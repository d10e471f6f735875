"""The LR range test as ``annkit train optimizer.lr=auto`` and ``annkit lr-find`` both run it: repeated sweeps from
one state, their analyses, and the consensus. Plain arguments, no I/O, no config: the tasks wire it
(:mod:`annkit.tasks.build`), :mod:`annkit.lr_report` writes and prints what it found, and the rules that read a
curve live in :mod:`annkit.lr_finder`.

Every sweep starts from the same weights, optimizer state and random streams (a :class:`~annkit.lr_finder.Snapshot`
taken before the first and restored before each next one and after the last, verified by checksum), with its own
seed, and takes exactly the training step that training takes (:class:`annkit.loop.Step`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from annkit.data import Batcher
from annkit.loop import Step, autocast
from annkit.lr_finder import (
    DIAGNOSTICS,
    PROBLEMS,
    Analysis,
    Holdout,
    Snapshot,
    Sweep,
    analyze,
    consensus,
    ladder,
    sweep,
)
from annkit.models import eval_mode

RULE_NOTES = {
    "half_drop": "half of the loss drop done",
    "valley": "fastai's valley rule",
    "steepest": "steepest descent",
    "minimum/10": "lowest loss ÷ 10",
}


@dataclass(frozen=True)
class SearchSettings:
    """The range test's settings (configs/lr_find/default.yaml explains each), in the config's order."""

    start_lr: float
    end_lr: float
    steps: int
    mode: str
    repeats: int
    seed: int | None  # None: the run's seed
    holdout_batches: int
    holdout_every: int
    smooth: float
    diverge: float
    offset: float
    margin: float
    one_cycle_peak: str


@dataclass
class Found:
    """The result of the range test: every sweep, its analysis, and the consensus over repeats."""

    settings: dict[str, Any]
    seeds: list[int]
    sweeps: list[Sweep]
    analyses: list[Analysis]
    suggestion: float | None
    spread: float | None  # decades between the lowest and highest suggestion (repeats > 1)
    confidence: str
    band: tuple[float, float] | None  # medians (in log lr) of the sweeps' (onset, edge)
    rules: dict[str, float | None]  # median of each rule over the sweeps
    diagnostics: dict[str, str]
    seconds: float
    fingerprint: dict[str, Any]

    def describe(self) -> str:
        if self.suggestion is None:
            return "no suggestion"
        band = f", band {self.band[0]:.2g}…{self.band[1]:.2g}" if self.band else ""
        spread = f", spread {self.spread:.2f} decades" if self.spread is not None else ""
        return f"{self.suggestion:.3g}{band}{spread}, {self.confidence} confidence"

    def problems(self) -> dict[str, str]:
        return {k: v for k, v in self.diagnostics.items() if k in PROBLEMS or k == "never_diverged"}

    def peak(self, top_of_band: bool) -> float | None:
        """A one-cycle schedule's max_lr: the top of the band (Smith's max_lr) when asked and found, else the
        suggestion."""
        return self.band[1] if top_of_band and self.band else self.suggestion

    def summary(self) -> dict[str, Any]:
        """The short form (for metrics.json): no curves."""
        return {
            "suggestion": self.suggestion,
            "band": list(self.band) if self.band else None,
            "rules": self.rules,
            "spread_decades": self.spread,
            "confidence": self.confidence,
            "diagnostics": self.diagnostics,
            "per_sweep": [a.suggestion for a in self.analyses],
            "seconds": self.seconds,
            "settings": self.settings,
        }

    def to_json(self, command: str | None) -> dict[str, Any]:
        s = self.settings
        return {
            **self.summary(),
            "ladder": ladder(s["start_lr"], s["end_lr"], s["steps"], s["mode"]).tolist(),
            "sweeps": [
                {
                    "seed": seed,
                    "lrs": sw.lrs,
                    "losses": sw.losses,
                    "stop": sw.stop,
                    "epochs": sw.epochs,
                    "holdout": [{"rung": i, "lr": sw.lrs[i], "loss": v} for i, v in sw.holdout],
                    **an.to_json(),
                }
                for seed, sw, an in zip(self.seeds, self.sweeps, self.analyses)
            ],
            "fingerprint": self.fingerprint,
            "train_command": command,
        }


def holdout_loss(model: nn.Module, val: Batcher, step: Step, count: int) -> Holdout:
    """() → the plain (unweighted, unsmoothed) mean loss on the first ``count`` batches of ``val``, in eval mode:
    the same fixed samples at every call."""
    batches = list(itertools.islice(val, count))
    loss_fn = step.head.loss_fn(train=False)
    n = sum(len(y) for _, y, _ in batches)

    @torch.no_grad()
    def run() -> torch.Tensor:
        with eval_mode(model):
            total = torch.zeros((), device=batches[0][1].device)
            for x, y, _ in batches:
                with autocast(y.device, step.autocast_dtype):
                    out = model(step.prepare(x, False))
                total += loss_fn(out, y).float().sum()
            return total / n

    return run


def _median_log(values: list[float | None]) -> float | None:
    found = [math.log10(v) for v in values if v is not None]
    return 10 ** float(np.median(found)) if found else None


def search(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Batcher,
    step: Step,
    settings: SearchSettings,
    *,
    seed: int,
    reseed: Callable[[int], None],
    generators: list[torch.Generator],
    holdout: Holdout | None = None,
    fingerprint: dict[str, Any] | None = None,
    on_rung: Callable[[int, float], None] | None = None,
) -> Found:
    """``settings.repeats`` sweeps of ``step`` over ``train``, seeds ``seed``, ``seed`` + 1, …, each from the same
    state (``reseed(seed)`` seeds a sweep's random streams as a run would be seeded); ``model``, ``optimizer`` and
    ``generators`` are left exactly as they were (or the restore raises). ``on_rung(done, lr)`` follows progress."""
    seeds = [seed + r for r in range(settings.repeats)]
    rungs = ladder(settings.start_lr, settings.end_lr, settings.steps, settings.mode)
    per_epoch = len(train)
    snapshot = Snapshot(model, optimizer, generators=generators)
    sweeps: list[Sweep] = []
    analyses: list[Analysis] = []
    started = time.perf_counter()
    try:
        for r, each in enumerate(seeds):
            if r:
                snapshot.restore()
            reseed(each)
            model.train()
            done = r * len(rungs)
            sw = sweep(
                optimizer, train, rungs, lambda x, y, w: step.objective(model, optimizer, (x, y, w)),
                sigma=settings.smooth, diverge=settings.diverge, holdout=holdout,
                holdout_every=settings.holdout_every, batches_per_epoch=per_epoch,
                on_rung=None if on_rung is None else lambda i, lr, done=done: on_rung(done + i + 1, lr),
            )  # fmt: skip
            an = analyze(sw.lrs, sw.losses, sigma=settings.smooth, offset=settings.offset, margin=settings.margin,
                         diverge=settings.diverge)  # fmt: skip
            if sw.epochs > 1:
                an.diagnostics["out_of_data"] = DIAGNOSTICS["out_of_data"].format(
                    steps=math.ceil(sw.epochs * per_epoch), per_epoch=per_epoch, epochs=f"{sw.epochs:.1f}"
                )
            sweeps.append(sw)
            analyses.append(an)
    finally:
        snapshot.restore()  # raises when the checksum differs from the one taken before the sweeps
    return _consensus(settings, seeds, sweeps, analyses, time.perf_counter() - started, fingerprint or {})


def _consensus(settings: SearchSettings, seeds: list[int], sweeps: list[Sweep], analyses: list[Analysis],
               seconds: float, fingerprint: dict[str, Any]) -> Found:  # fmt: skip
    """The sweeps' analyses as one result: the median suggestion, band and rules, the diagnostics of any sweep."""
    suggestion, spread, confidence = consensus([a.suggestion for a in analyses])
    diagnostics: dict[str, str] = {}
    for a in analyses:
        for code, text in a.diagnostics.items():
            diagnostics.setdefault(code, text)
    if spread is not None and spread > 0.5:
        diagnostics["spread"] = DIAGNOSTICS["spread"].format(repeats=len(seeds), spread=spread)
    if confidence == "single sweep" and any(k in PROBLEMS for k in diagnostics):
        confidence = "low"
    bands = [a.band for a in analyses if a.band is not None]
    band = (_median_log([b[0] for b in bands]), _median_log([b[1] for b in bands])) if bands else None
    rules = {name: _median_log([a.rules[name] for a in analyses]) for name in RULE_NOTES}
    return Found(asdict(settings), seeds, sweeps, analyses, suggestion, spread, confidence, band, rules,  # type: ignore[arg-type]
                 diagnostics, seconds, fingerprint)  # fmt: skip
