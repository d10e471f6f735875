"""``annkit lr-find``: the LR range test on exactly what ``annkit train`` would build.

``lr_find(cfg, run_dir)`` validates the config, builds the model, data, loss and optimizer with
:func:`annkit.tasks.train.build` (the same objects ``train`` trains), and calls :func:`find_lr`,
which ``annkit train optimizer.lr=auto`` calls too. The sweep takes annkit's own training step
(weights, penalties, clipping, autocast: :meth:`Setup.step`); the rules that read the curve live in
:mod:`annkit.lr_finder`. Outputs: lr_find.json, lr_find.csv, lr_find.png and TensorBoard events
in the run dir, a rich table of the suggestions, and the ``annkit train`` line to copy.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from annkit import __version__
from annkit.checkpoint import atomic_write_bytes
from annkit.commands import command as command_line
from annkit.commands import override
from annkit.config import validate
from annkit.data import Batcher
from annkit.distributed import world_from_env
from annkit.errors import AnnkitError, user_errors
from annkit.loop import autocast
from annkit.lr_finder import (
    DIAGNOSTICS,
    PROBLEMS,
    Analysis,
    Holdout,
    Snapshot,
    Sweep,
    analyze,
    consensus,
    group_ratios,
    ladder,
    set_lr,
    sweep,
)
from annkit.models import count_params, summarize
from annkit.runtime import seed_everything
from annkit.tasks.train import Setup, build, describe_model, facts, finite_or_null
from annkit.tracking import ConsoleReporter, TensorBoardLogger, next_lines

RULE_NOTES = {
    "half_drop": "half of the loss drop done",
    "valley": "fastai's valley rule",
    "steepest": "steepest descent",
    "minimum/10": "lowest loss ÷ 10",
}


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
        return {
            **self.summary(),
            "ladder": ladder(
                self.settings["start_lr"], self.settings["end_lr"], self.settings["steps"], self.settings["mode"]
            ).tolist(),
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


def _median_log(values: list[float | None]) -> float | None:
    found = [math.log10(v) for v in values if v is not None]
    return 10 ** float(np.median(found)) if found else None


def _holdout(setup: Setup, count: int) -> Holdout:
    """() → the plain (unweighted, unsmoothed) mean loss on the first ``count`` validation batches of
    trainer.batch_size, in eval mode: the same fixed samples at every call."""
    batches = list(
        itertools.islice(Batcher(setup.data.val.x, setup.data.val.y, setup.resolved["trainer"]["batch_size"]), count)
    )
    loss_fn = setup.head.loss_fn(train=False)
    n = sum(len(y) for _, y, _ in batches)
    model = setup.model

    @torch.no_grad()
    def run() -> torch.Tensor:
        model.eval()
        try:
            total = torch.zeros((), device=setup.device)
            for x, y, _ in batches:
                with autocast(setup.device, setup.amp):
                    out = model(setup.data.prepare(x, False))
                total += loss_fn(out, y).float().sum()
            return total / n
        finally:
            model.train()

    return run


def fingerprint(setup: Setup) -> dict[str, Any]:
    """What a curve depends on, recorded beside it so curves are compared only when they match."""
    r, data = setup.resolved, setup.data
    params, _ = count_params(setup.model)
    return {
        "model": describe_model(
            r["model"]["hidden"],
            r["model"]["activation"],
            r["model"]["dropout"],
            r["model"]["norm"],
            math.prod(data.input_shape),
            setup.head.outputs,
        ),
        "params": params,
        "optimizer": type(setup.optimizer).__name__,
        "optimizer_args": {k: v for k, v in r["optimizer"].items() if not k.startswith("_") and k != "lr"},
        "batch_size": r["trainer"]["batch_size"],
        "dataset": r["dataset"]["name"],
        "train_samples": len(data.train),
        "loss": r["loss"],
        "precision": "bf16" if setup.amp else "fp32",
        "device": str(setup.device),
        "seed": r["trainer"]["seed"],
        "annkit": __version__,
        "torch": torch.__version__,
    }


def _reseed(setup: Setup, seed: int) -> None:
    """One sweep's random streams, seeded as ``train`` seeds a run: Python, NumPy and torch (dropout),
    and the shuffling/augmentation generator at seed + 1."""
    seed_everything(seed, setup.resolved["trainer"]["deterministic"])
    setup.rng.manual_seed(seed + 1)


def find_lr(
    setup: Setup,
    console: Console,
    run_dir: Path,
    tensorboard: TensorBoardLogger | None = None,
    overrides: list[str] | None = None,
) -> Found:
    """Run ``lr_find.repeats`` sweeps on ``setup``'s model and optimizer, each from the same state,
    then restore that state (verified by checksum); write lr_find.{json,csv,png} and the curves to
    TensorBoard; print the suggestions (and, given the command line's ``overrides``, the
    ``annkit train`` line that uses the suggestion)."""
    settings = setup.resolved["lr_find"]
    base_seed = settings["seed"] if settings["seed"] is not None else setup.resolved["trainer"]["seed"]
    seeds = [base_seed + r for r in range(settings["repeats"])]
    rungs = ladder(settings["start_lr"], settings["end_lr"], settings["steps"], settings["mode"])
    holdout = _holdout(setup, settings["holdout_batches"]) if settings["holdout_batches"] else None
    step = setup.step()
    per_epoch = len(setup.train_batches)
    snapshot = Snapshot(setup.model, setup.optimizer, generators=[setup.rng])
    sweeps: list[Sweep] = []
    analyses: list[Analysis] = []
    started = time.perf_counter()
    live = console.is_terminal and not console.is_dumb_terminal
    progress = Progress(
        TextColumn("[bold]lr-find"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[lr]}"),
        console=console,
        transient=True,
        disable=not live,
    )
    try:
        with progress:
            task = progress.add_task("sweep", total=len(seeds) * len(rungs), lr="")
            for r, seed in enumerate(seeds):
                if r:
                    snapshot.restore()
                _reseed(setup, seed)
                setup.model.train()
                done = r * len(rungs)

                def on_rung(i: int, lr: float, done: int = done) -> None:
                    progress.update(task, completed=done + i + 1, lr=f"lr {lr:.2e}")

                sw = sweep(
                    setup.optimizer,
                    setup.train_batches,
                    rungs,
                    step,
                    sigma=settings["smooth"],
                    diverge=settings["diverge"],
                    holdout=holdout,
                    holdout_every=settings["holdout_every"],
                    batches_per_epoch=per_epoch,
                    on_rung=on_rung,
                )
                an = analyze(
                    sw.lrs,
                    sw.losses,
                    sigma=settings["smooth"],
                    offset=settings["offset"],
                    margin=settings["margin"],
                    diverge=settings["diverge"],
                )
                if sw.epochs > 1:
                    an.diagnostics["out_of_data"] = DIAGNOSTICS["out_of_data"].format(
                        steps=math.ceil(sw.epochs * per_epoch), per_epoch=per_epoch, epochs=f"{sw.epochs:.1f}"
                    )
                sweeps.append(sw)
                analyses.append(an)
    finally:
        snapshot.restore()  # raises when the checksum differs from the one taken before the sweeps
    seconds = time.perf_counter() - started

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
    found = Found(
        dict(settings),
        seeds,
        sweeps,
        analyses,
        suggestion,
        spread,
        confidence,
        band,
        rules,  # type: ignore[arg-type]
        diagnostics,
        seconds,
        fingerprint(setup),
    )
    command = train_command(overrides, suggestion) if overrides is not None and suggestion is not None else None
    write_outputs(found, run_dir, tensorboard, command)
    report(found, console, run_dir, command)
    return found


def apply_suggestion(setup: Setup, found: Found) -> None:
    """Train at the suggestion: set optimizer.lr and every scheduler value that interpolated it. A
    one-cycle max_lr that followed optimizer.lr peaks at the suggestion, or at the top of the band
    with ``lr_find.one_cycle_peak=band_top``."""
    if found.suggestion is None:
        problems = " ".join(found.diagnostics.values())
        raise AnnkitError(
            f"optimizer.lr=auto: the LR range test found no learning rate to train with. {problems} Set the learning "
            f"rate by hand (optimizer.lr=<value>), or look at the curve first: `annkit lr-find` with the same overrides "
            f"writes lr_find.png."
        )
    r = setup.resolved
    r["optimizer"]["lr"] = found.suggestion
    set_lr(setup.optimizer, found.suggestion, group_ratios(setup.optimizer))
    sched = r["scheduler"]
    top = r["lr_find"]["one_cycle_peak"] == "band_top" and str(sched.get("_target_", "")).endswith("OneCycleLR")
    for key, value in list(sched.items()):
        if value == "auto":
            sched[key] = found.band[1] if top and key == "max_lr" and found.band else found.suggestion


# ── outputs ────────────────────────────────────────────────────────────────────────────────────


def plot(found: Found) -> Any:
    """The loss-vs-lr figure (matplotlib, Agg canvas; no pyplot state): raw and smoothed curves per
    sweep, the holdout loss, the band shaded, the suggestion and the other rules marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    lows, highs = [], []
    for r, (sw, an) in enumerate(zip(found.sweeps, found.analyses)):
        color = f"C{r % 10}"
        ax.plot(sw.lrs, sw.losses, color=color, alpha=0.3, lw=0.8, label="loss (raw)" if r == 0 else None)
        if an.smoothed:
            ax.plot(
                sw.lrs[: len(an.smoothed)],
                an.smoothed,
                color=color,
                lw=2,
                label="smoothed" + (f" (seed {found.seeds[r]})" if len(found.sweeps) > 1 else ""),
            )
            lowest = int(np.argmin(an.smoothed))
            lows.append(an.smoothed[lowest])
            highs.append(max(an.smoothed[: lowest + 1]))
        if sw.holdout:
            ax.plot(
                [sw.lrs[i] for i, _ in sw.holdout],
                [v for _, v in sw.holdout],
                "o",
                color=color,
                ms=3,
                label="holdout loss" if r == 0 else None,
            )
    if found.band:
        ax.axvspan(*found.band, color="tab:green", alpha=0.12, label=f"band {found.band[0]:.2g} … {found.band[1]:.2g}")
    styles = {
        "half_drop": ("tab:blue", "--"),
        "valley": ("tab:purple", ":"),
        "steepest": ("tab:orange", "-."),
        "minimum/10": ("tab:gray", "--"),
    }
    for name, (color, style) in styles.items():
        if found.rules.get(name):
            ax.axvline(found.rules[name], color=color, ls=style, lw=1, label=f"{name} {found.rules[name]:.2g}")
    if found.suggestion:
        ax.axvline(found.suggestion, color="tab:red", lw=2, label=f"suggestion {found.suggestion:.3g}")
    ax.set_xscale("log")
    if lows and highs:
        lo, hi = min(lows), max(highs)
        pad = 0.1 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1e-3)
        ax.set_ylim(lo - pad, hi + 3 * pad)  # the blow-up leaves the frame instead of flattening the descent
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    title = f"LR range test · {found.fingerprint['optimizer']} · batch {found.fingerprint['batch_size']}"
    ax.set_title(
        title
        + (f" · suggestion {found.suggestion:.3g} ({found.confidence})" if found.suggestion else " · no suggestion"),
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def write_outputs(found: Found, run_dir: Path, tensorboard: TensorBoardLogger | None, command: str | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        run_dir / "lr_find.json", json.dumps(finite_or_null(found.to_json(command)), indent=2, allow_nan=False).encode()
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["sweep", "seed", "rung", "lr", "loss", "smoothed", "holdout_loss"])
    for r, (seed, sw, an) in enumerate(zip(found.seeds, found.sweeps, found.analyses)):
        held = dict(sw.holdout)
        for i, (lr, loss) in enumerate(zip(sw.lrs, sw.losses)):
            smoothed = f"{an.smoothed[i]:.9g}" if i < len(an.smoothed) else ""
            writer.writerow([r, seed, i, f"{lr:.9g}", f"{loss:.9g}", smoothed, f"{held[i]:.9g}" if i in held else ""])
    atomic_write_bytes(run_dir / "lr_find.csv", buffer.getvalue().encode())
    fig = plot(found)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    atomic_write_bytes(run_dir / "lr_find.png", png.getvalue())
    if tensorboard is not None:
        for r, (sw, an) in enumerate(zip(found.sweeps, found.analyses)):
            for i, (lr, loss) in enumerate(zip(sw.lrs, sw.losses)):
                tensorboard.writer.add_scalar(f"lr_find/sweep_{r}/loss", loss, i)
                if i < len(an.smoothed):
                    tensorboard.writer.add_scalar(f"lr_find/sweep_{r}/smoothed", an.smoothed[i], i)
                if r == 0:
                    tensorboard.writer.add_scalar("lr_find/lr", lr, i)
            for i, v in sw.holdout:
                tensorboard.writer.add_scalar(f"lr_find/sweep_{r}/holdout_loss", v, i)
        canvas = fig.canvas
        canvas.draw()
        tensorboard.writer.add_image("lr_find/curve", np.asarray(canvas.buffer_rgba())[..., :3], 0, dataformats="HWC")
        lines = [f"**suggestion** {found.describe()}", ""]
        lines += [f"- {name}: {lr:.3g}" if lr else f"- {name}: –" for name, lr in found.rules.items()]
        lines += ["", *(f"- *{code}*: {text}" for code, text in found.diagnostics.items())]
        if command:
            lines += ["", f"    {command}"]
        tensorboard.text("lr_find/summary", "\n".join(lines), 0)
        tensorboard.writer.flush()


def train_command(overrides: list[str], lr: float) -> str:
    """The ``annkit train`` line with the same overrides and the suggested lr."""
    kept = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith(("lr_find.", "optimizer.lr"))]
    return command_line("train", *kept, f"optimizer.lr={lr:.3g}")


def report(found: Found, console: Console, run_dir: Path, command: str | None) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("rule", no_wrap=True)
    table.add_column("lr", justify="right", no_wrap=True)
    if len(found.sweeps) > 1:
        table.add_column("sweeps' range", justify="right", no_wrap=True)
    table.add_column("how it is read")
    many = len(found.sweeps) > 1
    s = found.settings
    rows = [
        (
            "suggestion",
            found.suggestion,
            [a.suggestion for a in found.analyses],
            f"half-drop +{s['offset']:g} dec, ≤ edge −{s['margin']:g} dec",
        )
    ]
    rows += [(name, lr, [a.rules[name] for a in found.analyses], RULE_NOTES[name]) for name, lr in found.rules.items()]
    for name, lr, each, note in rows:
        cells = [
            f"[bold]{name}" if name == "suggestion" else name,
            f"[bold]{lr:.3g}" if lr and name == "suggestion" else f"{lr:.3g}" if lr else "–",
        ]
        if many:
            found_ = [v for v in each if v]
            cells.append(f"{min(found_):.2g} … {max(found_):.2g}" if found_ else "–")
        table.add_row(*cells, note)
    if found.band:
        table.add_row(
            "band",
            f"{found.band[0]:.3g} … {found.band[1]:.3g}",
            *([""] if many else []),
            "onset … blow-up edge: one-cycle max_lr range",
        )
    counts = Counter(f"{sw.stop} at {sw.lrs[-1]:.2g}" for sw in found.sweeps)
    stops = ", ".join(f"{text} (×{n})" if n > 1 else text for text, n in counts.items())
    lines: list[Any] = [table, Text("")]
    if found.suggestion:
        spread = (
            f" · spread {found.spread:.2f} decades over {len(found.sweeps)} sweeps" if found.spread is not None else ""
        )
        lines.append(
            Text(f"suggestion {found.suggestion:.3g} · {found.confidence} confidence{spread}", style="bold green")
        )
    else:
        lines.append(Text("no suggestion: see below", style="bold red"))
    lines.append(Text(f"sweeps stopped: {stops} · {found.seconds:.1f} s"))
    for code, text in found.diagnostics.items():
        lines.append(Text(f"{code}: {text}", style="yellow"))
    console.print(Panel(Group(*lines), title="[bold]lr-find", title_align="left", expand=False))
    next_lines(console, run_dir, "lr_find.png, lr_find.json, lr_find.csv")
    if command and found.suggestion:  # outside the panel and unwrapped, so that it copies as one line
        console.print(Text("train with it:", style="bold"))
        console.print(Text(command, style="cyan"), soft_wrap=True)


def lr_find(
    cfg: DictConfig, run_dir: Path, console: Console | None = None, overrides: list[str] | None = None
) -> Found:
    """The ``annkit lr-find`` task: build as ``train`` would, sweep, report; the model is left as built."""
    resolved = validate(cfg)
    if world_from_env() is not None:
        raise AnnkitError(
            "annkit lr-find runs in one process: under torchrun every process would sweep on its own. Run "
            "`annkit lr-find` with the same overrides without torchrun, then train under torchrun with its "
            "suggestion as optimizer.lr=<value>."
        )
    if resolved["resume"] is not None:
        raise AnnkitError(
            f"resume={resolved['resume']} goes on with a training run; annkit lr-find starts no run to resume. "
            f"Use `{command_line('train', override('resume', resolved['resume']))}`, or drop resume= from the lr-find command."
        )
    console = console or Console()
    setup = build(resolved)
    s, t = resolved["lr_find"], resolved["trainer"]
    params, _ = count_params(setup.model)
    seed = s["seed"] if s["seed"] is not None else t["seed"]
    finder = (
        f"{s['steps']} rungs {s['start_lr']:g} → {s['end_lr']:g} ({s['mode']}) × {s['repeats']} sweep(s), seed {seed}"
        + (f", holdout {s['holdout_batches']} batch(es) every {s['holdout_every']}" if s["holdout_batches"] else "")
    )
    optim = f"{type(setup.optimizer).__name__} (lr swept; other settings as configured)"
    header = [
        ("finder" if label == "schedule" else label, text)
        for label, text in facts(setup, run_dir, optim=optim, schedule=finder)
    ]
    ConsoleReporter(console, "annkit lr-find").header(header, summarize(setup.model, setup.data.input_shape), params)
    tensorboard = TensorBoardLogger(run_dir / "tb", OmegaConf.to_yaml(cfg, resolve=True))
    try:
        return find_lr(setup, console, run_dir, tensorboard, overrides=overrides or [])
    finally:
        tensorboard.close()


def run(cfg: DictConfig) -> None:
    with user_errors():
        lr_find(cfg, Path(HydraConfig.get().runtime.output_dir), overrides=list(HydraConfig.get().overrides.task))
