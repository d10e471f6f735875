"""The learning-rate range test (Smith 2015, "Cyclical learning rates"; popularised by fastai).

Raise the learning rate rung by rung from ``start_lr`` to ``end_lr``, take one training step per
rung, record the loss, stop once it blows up, and read a learning rate off the curve. This module
holds the parts that do not read a config:

* :func:`ladder` — the rungs, evenly spaced in log(lr) (or lr), both ends included.
* :func:`smooth` — zero-phase smoothing of the raw losses in log(lr): a Gaussian-weighted local
  linear fit around every rung. Symmetric, so it has no lag (an EMA, as in fastai and
  torch-lr-finder, shifts the curve right by 0.5–1 decade), and local *linear*, so it is unbiased
  on a slope, also at the two ends of the curve.
* :func:`blew_up` — the stop rule, free of the loss's sign and scale: stop once the median of the
  last 5 losses has climbed back above ``min + diverge × max(start − min, 6 × noise)`` (min and
  start of the smoothed curve; ``diverge=1``: back where it started). fastai's "4 × the best
  loss" means nothing for a loss that can be negative or sits at 1e-4. Any NaN/Inf stops at once.
* :func:`analyze` — every suggestion rule as a pure function of (lrs, losses), plus diagnostics.
  Landmarks on the smoothed curve, all level crossings (free of the loss's sign and scale): the
  half-drop point (half of the drop from the start to the minimum has happened), the onset (10 %)
  and the blow-up edge (past the minimum, the loss has climbed back by 10 % of the drop). The
  suggestion is ``offset`` decades above the half-drop point (1.5 by default), capped ``margin``
  decades below the edge (0.25); the band (onset … edge) is Smith's range for a one-cycle
  max_lr. The half-drop point itself is the most repeatable landmark (its spread over seeds is
  ~0.05 decade on Fashion-MNIST) but sits where a sweep of a few steps per rung learns, ~1.5
  decades below the best learning rate of a real run (scripts/lr_find_eval.py measures this; the
  docs/lr-find.md quotes it). fastai's ``valley``, the steepest slope and minimum/10 are computed from the
  same smoothed curve for comparison.
* :func:`consensus` — the median suggestion of several sweeps and its spread in decades.
* :func:`sweep` — the loop over the rungs, calling the caller's training step (annkit's own
  :func:`annkit.loop.train_step`), reading the device losses once every few rungs.
* :class:`Snapshot` — everything a sweep touches (weights, buffers, gradients, optimizer and
  scheduler state, train/eval modes, Python/NumPy/torch/CUDA and generator RNG states), held in
  CPU memory and restored afterwards, with a checksum that proves the restore.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from annkit.runtime import rng_state, set_rng_state

ONSET = 0.1  # the band starts where this share of the loss drop has happened
RISE = 0.1  # the blow-up edge: past the minimum, the loss has climbed back by this share of the drop
RULES = ("half_drop", "valley", "steepest", "minimum/10")  # computed beside the suggestion, for comparison
NOISE_FLOOR = 6.0  # a rise smaller than this many noise σ never counts as a blow-up
MIN_RUNGS = 10  # rungs before a rise can stop the sweep (the noise needs a few to be measured)
RECENT = 5  # the stop rule compares the median of the last RECENT raw losses with the smoothed minimum
CHECK_EVERY = 5  # rungs between host reads of the losses during a sweep (one sync each)
SNR_NO_DESCENT = 4.0  # drop / noise below this: the loss did not really fall
SNR_NOISY = 15.0  # drop / noise below this: a suggestion, but flagged as noisy

DIAGNOSTICS = {
    "never_diverged": "the loss never blew up up to end_lr={end:.3g}, so the edge of the range is unknown and the "
    "suggestion may be too low: raise lr_find.end_lr.",
    "no_descent": "the loss never fell by more than its noise (drop {drop:.3g} vs noise {noise:.3g}): the model is not "
    "learning in this range (check the data and labels), or the range is too low (raise lr_find.end_lr).",
    "at_start": "the loss was already falling fast at start_lr={start:.3g}, so the descent began below the sweep: "
    "lower lr_find.start_lr.",
    "at_end": "the suggestion sits at the top of the sweep (end_lr={end:.3g}): raise lr_find.end_lr.",
    "noisy": "the curve is noisy (drop only {snr:.1f}× the step-to-step noise): use more steps (lr_find.steps), a "
    "larger batch (trainer.batch_size), or several sweeps (lr_find.repeats=5).",
    "nan_at_start": "the loss was NaN/Inf after only {n} rung(s) (lr {lr:.3g}): lower lr_find.start_lr, or check the "
    "data and the model.",
    "out_of_data": "the sweep needed {steps} batches but an epoch has {per_epoch}: the training data was cycled "
    "{epochs} times (the same samples seen again). Use a smaller trainer.batch_size or fewer lr_find.steps "
    "for a less correlated curve.",
    "spread": "the {repeats} sweeps disagree by {spread:.2f} decades: treat the median as rough.",
}
PROBLEMS = {"no_descent", "nan_at_start", "at_start", "at_end", "noisy", "spread"}


def ladder(start: float, end: float, steps: int, mode: str = "exp") -> np.ndarray:
    """``steps`` learning rates from ``start`` to ``end`` (both included), evenly spaced in log(lr)
    (``exp``) or in lr (``linear``)."""
    if not (0 < start < end) or steps < 2:
        raise ValueError(f"need 0 < start < end and steps ≥ 2, got {start}, {end}, {steps}")
    if mode == "exp":
        lrs = np.logspace(math.log10(start), math.log10(end), steps)
    elif mode == "linear":
        lrs = np.linspace(start, end, steps)
    else:
        raise ValueError(f"mode must be exp or linear, not {mode!r}")
    lrs[0], lrs[-1] = start, end  # exact ends (logspace rounds)
    return lrs


def _spacing(x: np.ndarray) -> float:
    return float(np.median(np.diff(x))) if len(x) > 1 else 1.0


def smooth(lrs: Sequence[float], losses: Sequence[float], sigma: float = 0.1) -> np.ndarray:
    """Zero-phase smoothing of ``losses`` along log10(lr): at every rung, the intercept of a
    least-squares line fitted with Gaussian weights exp(−½(Δx/σ)²), Δx in decades. σ is at least
    1.5 rungs, so a coarse ladder is still smoothed. Finite inputs only."""
    x = np.log10(np.asarray(lrs, dtype=np.float64))
    y = np.asarray(losses, dtype=np.float64)
    if len(x) < 3:
        return y.copy()
    sigma = max(sigma, 1.5 * _spacing(x))
    d = x[None, :] - x[:, None]  # d[i, j]: decades from rung i to rung j
    w = np.exp(-0.5 * (d / sigma) ** 2)
    s0, s1, s2 = w.sum(1), (w * d).sum(1), (w * d * d).sum(1)
    t0, t1 = (w * y).sum(1), (w * d * y).sum(1)
    det = s0 * s2 - s1 * s1
    ok = det > 1e-9 * s0 * s0
    return np.where(ok, (s2 * t0 - s1 * t1) / np.where(ok, det, 1.0), t0 / s0)


def noise_level(losses: np.ndarray) -> float:
    """Robust σ of the rung-to-rung noise: 1.4826 × median |Δ²y| / √6 (second differences cancel
    any locally linear trend; for white noise Var Δ²y = 6σ²)."""
    if len(losses) < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(np.diff(losses, 2))) / math.sqrt(6))


def blew_up(lrs: Sequence[float], losses: Sequence[float], *, sigma: float = 0.1, diverge: float = 1.0) -> bool:
    """The stop rule: a non-finite loss, or the median of the last :data:`RECENT` losses back above
    ``min + diverge × max(start − min, 6σ_noise)`` (start and min of the smoothed curve, σ_noise
    from :func:`noise_level`). Invariant to shifting and scaling the loss."""
    y = np.asarray(losses, dtype=np.float64)
    if len(y) and not np.isfinite(y).all():
        return True
    if len(y) < MIN_RUNGS:
        return False
    s = smooth(lrs, y, sigma)
    low = float(s.min())
    scale = max(float(s[0]) - low, NOISE_FLOOR * noise_level(y))
    recent = float(np.median(y[-RECENT:]))  # robust and causal: the smoothed end point is an extrapolation
    return scale > 0 and recent - low > diverge * scale


def _crossing(x: np.ndarray, s: np.ndarray, level: float, stop: int) -> float | None:
    """log10 lr of the last downward crossing of ``level`` by ``s`` before index ``stop``,
    interpolated linearly between the two rungs around it."""
    above = np.nonzero(s[: stop + 1] >= level)[0]
    above = above[above < stop]
    if len(above) == 0:
        return None
    i = int(above[-1])
    t = (s[i] - level) / (s[i] - s[i + 1]) if s[i] != s[i + 1] else 0.0
    return float(x[i] + t * (x[i + 1] - x[i]))


def valley_index(losses: Sequence[float]) -> int:
    """fastai's ``valley`` rule (fastai.callback.schedule.valley): the longest strictly decreasing
    subsequence of the curve, and the point 1/3 + 1/6 of the way along it (fastai 2.7)."""
    y = list(losses)
    n = len(y)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if y[i] < y[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


@dataclass
class Analysis:
    """What :func:`analyze` reads off one curve. LRs are floats (None where a rule has no answer)."""

    smoothed: list[float]
    used: int  # rungs analysed (up to the first NaN/Inf)
    suggestion: float | None  # half-drop point + offset decades, capped margin decades below the edge
    band: tuple[float, float] | None  # (onset, edge)
    rules: dict[str, float | None]  # half_drop, valley, steepest, minimum/10
    capped: bool  # half-drop + offset was above edge − margin and was lowered to it
    start_loss: float
    min_loss: float
    drop: float
    noise: float
    diagnostics: dict[str, str] = field(default_factory=dict)  # code → one sentence

    def to_json(self) -> dict[str, Any]:
        return {
            "suggestion": self.suggestion,
            "band": list(self.band) if self.band else None,
            "rules": self.rules,
            "capped": self.capped,
            "start_loss": self.start_loss,
            "min_loss": self.min_loss,
            "drop": self.drop,
            "noise": self.noise,
            "used_rungs": self.used,
            "diagnostics": self.diagnostics,
            "smoothed": self.smoothed,
        }


def _rise(x: np.ndarray, s: np.ndarray, level: float, start: int) -> float | None:
    """log10 lr where ``s`` first climbs above ``level`` after index ``start`` (interpolated)."""
    above = np.nonzero(s[start:] > level)[0]
    if len(above) == 0:
        return None
    j = start + int(above[0])
    t = (level - s[j - 1]) / (s[j] - s[j - 1])
    return float(x[j - 1] + t * (x[j] - x[j - 1]))


def analyze(
    lrs: Sequence[float],
    losses: Sequence[float],
    *,
    sigma: float = 0.1,
    offset: float = 1.5,
    margin: float = 0.25,
    diverge: float = 1.0,
    fraction: float = 0.5,
) -> Analysis:
    """Read the suggestions and diagnostics off one curve of (lr, loss) pairs.

    Only the rungs before the first NaN/Inf loss count. On the smoothed curve, with ``drop`` =
    start − minimum:

    * ``half_drop``: the last downward crossing of start − ``fraction``·drop before the minimum;
    * ``edge`` (the blow-up edge): where the loss, past its minimum, has climbed back by
      :data:`RISE` × drop; the top of the sweep when it never does;
    * ``onset``: the crossing of start − :data:`ONSET`·drop; the band is (onset, edge);
    * the suggestion: ``offset`` decades above the half-drop point, capped ``margin`` decades
      below the edge: ``min(half_drop + offset, edge − margin)`` in log10 lr.

    Shifting the losses, or scaling them by a positive factor, changes no lr returned.
    """
    all_lrs = np.asarray(lrs, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    bad = np.nonzero(~np.isfinite(y))[0]
    used = int(bad[0]) if len(bad) else len(y)
    x_all = np.log10(all_lrs)
    x, y = x_all[:used], y[:used]
    empty: dict[str, float | None] = dict.fromkeys(RULES)
    if used < 5:
        lr = float(all_lrs[min(used, len(all_lrs) - 1)]) if len(all_lrs) else float("nan")
        nan = math.nan
        diagnostics = {"nan_at_start": DIAGNOSTICS["nan_at_start"].format(n=used, lr=lr)}
        return Analysis([], used, None, None, empty, False, nan, nan, nan, nan, diagnostics)
    s = smooth(10**x, y, sigma)
    i_min = int(np.argmin(s))
    start, low = float(s[0]), float(s[i_min])
    drop = start - low
    noise = noise_level(y[: max(i_min + 1, MIN_RUNGS)])  # before the blow-up, whose jumps are not noise
    snr = drop / noise if noise > 0 else (math.inf if drop > 0 else 0.0)
    diagnostics: dict[str, str] = {}
    if not len(bad) and not blew_up(10**x, y, sigma=sigma, diverge=diverge):
        diagnostics["never_diverged"] = DIAGNOSTICS["never_diverged"].format(end=10 ** x[-1])
    if drop <= 0 or snr < SNR_NO_DESCENT:
        diagnostics["no_descent"] = DIAGNOSTICS["no_descent"].format(drop=drop, noise=noise)
        return Analysis(s.tolist(), used, None, None, empty, False, start, low, drop, noise, diagnostics)
    if snr < SNR_NOISY:
        diagnostics["noisy"] = DIAGNOSTICS["noisy"].format(snr=snr)

    minimum = float(x[i_min])
    edge = _rise(x, s, low + RISE * drop, i_min)
    edge = float(x[-1]) if edge is None else edge  # no rise before the end (or the NaN): the last rung
    half = _crossing(x, s, start - fraction * drop, i_min)
    half = minimum if half is None else half
    onset = _crossing(x, s, start - ONSET * drop, i_min)
    onset = float(x[0]) if onset is None else min(onset, half)
    capped = half + offset > edge - margin
    suggestion = max(min(half + offset, edge - margin), float(x[0]))
    slope = np.gradient(s, x)
    rules = {
        "half_drop": 10**half,
        "valley": float(10 ** x[valley_index(s.tolist())]),
        "steepest": float(10 ** x[int(np.argmin(slope[: i_min + 1]))]),
        "minimum/10": float(10**minimum / 10),
    }
    step = _spacing(x)
    if half - x[0] < 2 * step or onset - x[0] < step:  # the descent was under way at start_lr
        diagnostics["at_start"] = DIAGNOSTICS["at_start"].format(start=10 ** x[0])
    if x_all[-1] - suggestion < 2 * step:
        diagnostics["at_end"] = DIAGNOSTICS["at_end"].format(end=10 ** x_all[-1])
    return Analysis(
        s.tolist(), used, 10**suggestion, (10**onset, 10**edge), rules, capped, start, low, drop, noise, diagnostics
    )


def consensus(suggestions: Sequence[float | None]) -> tuple[float | None, float | None, str]:
    """(median lr in log space, spread max − min in decades, confidence) of several sweeps.

    Confidence: ``high`` when the sweeps agree within 0.15 decade, ``medium`` within 0.5, else
    ``low``; ``low`` as well when a sweep gave no suggestion; ``single sweep`` for one sweep."""
    found = [math.log10(s) for s in suggestions if s is not None]
    if not found:
        return None, None, "none"
    median = 10 ** float(np.median(found))
    if len(suggestions) == 1:
        return median, None, "single sweep"
    spread = max(found) - min(found)
    if len(found) < len(suggestions):
        return median, spread, "low"
    return median, spread, "high" if spread <= 0.15 else "medium" if spread <= 0.5 else "low"


# ── the sweep ──────────────────────────────────────────────────────────────────────────────────

Step = Callable[
    [torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor
]  # (x, y, w) → objective (device scalar)
Holdout = Callable[[], torch.Tensor]  # () → mean loss on the fixed holdout batches (device scalar)


@dataclass
class Sweep:
    lrs: list[float]  # the rungs actually taken
    losses: list[float]  # loss after the update at each rung (NaN/Inf kept; analysis stops before them)
    stop: str  # diverged | nan | end
    holdout: list[tuple[int, float]]  # (rung, holdout loss)
    epochs: float  # passes over the training data the sweep used


def set_lr(optimizer: torch.optim.Optimizer, lr: float, ratios: Sequence[float]) -> None:
    """One global multiplier: group g gets lr × ratios[g], so per-group lr ratios survive."""
    for group, ratio in zip(optimizer.param_groups, ratios):
        group["lr"] = lr * ratio


def group_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    return [lr / lrs[0] for lr in lrs] if lrs[0] > 0 else [1.0] * len(lrs)


def sweep(
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Any],
    rungs: Sequence[float],
    step: Step,
    *,
    sigma: float = 0.1,
    diverge: float = 1.0,
    holdout: Holdout | None = None,
    holdout_every: int = 5,
    batches_per_epoch: int | None = None,
    on_rung: Callable[[int, float], None] | None = None,
) -> Sweep:
    """Climb the ladder: at rung i set the lr, take ``step`` on the next batch, and record the loss
    of the batch *after* it (the effect of lr_i; one extra step at the top rung gives the last
    value). ``batches`` is re-iterated (a new shuffle) whenever it runs out. The device losses are
    read every :data:`CHECK_EVERY` rungs (one host sync), and the sweep stops at the first read that
    shows a NaN/Inf or a blow-up (:func:`blew_up`)."""
    ratios = group_ratios(optimizer)
    stream = itertools.chain.from_iterable(iter(batches) for _ in itertools.count())  # cycles epochs lazily
    lrs = [float(r) for r in rungs]
    device_losses: list[torch.Tensor] = []
    read: list[float] = []
    held: list[tuple[int, torch.Tensor]] = []
    stop, taken = "end", 0
    for i, lr in enumerate([*lrs, lrs[-1]]):  # one extra step: the loss after the top rung's update
        set_lr(optimizer, lr, ratios)
        x, y, w = next(stream)
        loss = step(x, y, w)
        taken += 1
        if on_rung is not None and i < len(lrs):
            on_rung(i, lr)
        if i > 0:
            device_losses.append(loss)
        if holdout is not None and i < len(lrs) and (i + 1) % holdout_every == 0:
            held.append((i, holdout()))
        if len(device_losses) % CHECK_EVERY == 0 or i == len(lrs):
            read += torch.stack(device_losses[len(read) :]).float().tolist() if len(device_losses) > len(read) else []
            if blew_up(lrs[: len(read)], read, sigma=sigma, diverge=diverge):
                stop = "nan" if not np.isfinite(read).all() else "diverged"
                break
    if len(device_losses) > len(read):
        read += torch.stack(device_losses[len(read) :]).float().tolist()
    if stop == "nan":  # keep the first non-finite value (it marks where the curve ends)
        read = read[: int(np.nonzero(~np.isfinite(read))[0][0]) + 1]
    values = torch.stack([v for _, v in held]).float().tolist() if held else []  # one host read
    points = [(i, v) for (i, _), v in zip(held, values) if i < len(read)]
    return Sweep(lrs[: len(read)], read, stop, points, taken / (batches_per_epoch or taken))


# ── leaving no trace ───────────────────────────────────────────────────────────────────────────


def _to_cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_cpu(v) for v in tree)
    return copy.deepcopy(tree)


def _feed(h: Any, tree: Any) -> None:
    if isinstance(tree, torch.Tensor):
        t = tree.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(tree, dict):
        for k in sorted(tree, key=str):
            h.update(repr(k).encode())
            _feed(h, tree[k])
    elif isinstance(tree, (list, tuple)):
        h.update(f"[{len(tree)}".encode())
        for v in tree:
            _feed(h, v)
    elif isinstance(tree, np.ndarray):
        h.update(tree.tobytes())
    else:
        h.update(repr(tree).encode())


class Snapshot:
    """The state a sweep changes, copied to CPU memory: parameters and buffers, gradients,
    train/eval flags, optimizer and scheduler state (lrs included), and the Python, NumPy, torch
    (CPU and every CUDA device) and given ``torch.Generator`` random states.

    :meth:`restore` puts it all back in place (the same tensors, so the optimizer keeps pointing at
    the model's parameters) and checks that :meth:`checksum` equals the one taken at capture."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        generators: Sequence[torch.Generator] = (),
    ) -> None:
        self.model, self.optimizer, self.scheduler, self.generators = model, optimizer, scheduler, list(generators)
        self.state = self._capture()
        self.digest = self.checksum()

    def _capture(self) -> dict[str, Any]:
        return {
            "model": _to_cpu(self.model.state_dict(keep_vars=False)),
            "grads": [_to_cpu(p.grad) if p.grad is not None else None for p in self.model.parameters()],
            "training": [m.training for m in self.model.modules()],
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "scheduler": _to_cpu(self.scheduler.state_dict()) if self.scheduler is not None else None,
            "rng": rng_state(self.generators),
        }

    def checksum(self) -> str:
        h = hashlib.sha256()
        _feed(h, self._capture())
        return h.hexdigest()

    def restore(self) -> None:
        s = self.state
        self.model.load_state_dict(s["model"])
        for p, g in zip(self.model.parameters(), s["grads"]):
            p.grad = None if g is None else g.to(p.device, copy=True)
        for module, flag in zip(self.model.modules(), s["training"]):
            module.training = flag
        self.optimizer.load_state_dict(copy.deepcopy(s["optimizer"]))
        if self.scheduler is not None:
            self.scheduler.load_state_dict(copy.deepcopy(s["scheduler"]))
        set_rng_state(s["rng"], self.generators)
        after = self.checksum()
        if after != self.digest:
            raise RuntimeError(
                f"lr-find could not restore the training state (checksum {after[:12]} ≠ {self.digest[:12]})"
            )
