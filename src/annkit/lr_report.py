"""What the LR range test found, shown and kept: the loss-vs-lr plot, lr_find.{json,csv,png} and the curves in
TensorBoard, the rich table of the rules, the progress bar of the sweeps, and the ``annkit train`` line that uses
the suggestion. :mod:`annkit.lr_search` finds; this module reports (``annkit lr-find`` and ``optimizer.lr=auto``)."""

from __future__ import annotations

import contextlib
import csv
import io
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from annkit.commands import command as command_line
from annkit.lr_search import RULE_NOTES, Found
from annkit.records import atomic_write_bytes, write_record
from annkit.tracking import TensorBoardLogger, live_display, next_lines


@contextlib.contextmanager
def sweep_progress(console: Console, total: int) -> Iterator[Callable[[int, float], None]]:
    """A transient bar over the sweeps' rungs on a terminal or in Jupyter (nothing in a pipe); yields ``on_rung(done, lr)``."""
    live = live_display(console)
    progress = Progress(TextColumn("[bold]lr-find"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[lr]}"),
                        console=console, transient=True, disable=not live)  # fmt: skip
    with progress:
        task = progress.add_task("sweep", total=total, lr="")
        yield lambda done, lr: progress.update(task, completed=done, lr=f"lr {lr:.2e}")


def publish(found: Found, console: Console, run_dir: Path, tensorboard: TensorBoardLogger | None,
            command: str | None) -> None:  # fmt: skip
    """Write the outputs, then print the report."""
    write_outputs(found, run_dir, tensorboard, command)
    report(found, console, run_dir, command)


def plot(found: Found) -> Any:
    """The loss-vs-lr figure (matplotlib, Agg canvas; no pyplot state): raw and smoothed curves per
    sweep, the holdout loss, the band shaded, the suggestion and the other rules marked."""
    from annkit.figures import picture

    fig = picture((8, 4.8))
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
    write_record(run_dir / "lr_find.json", found.to_json(command))
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
        with tensorboard.timed():  # the curves, the figure and the summary count as logging
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
            tensorboard.writer.add_image(
                "lr_find/curve", np.asarray(canvas.buffer_rgba())[..., :3], 0, dataformats="HWC"
            )
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
