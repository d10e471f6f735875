"""What a run shows and records: the rich console and TensorBoard.

:class:`ConsoleReporter` prints the header, a live progress bar (epochs and batches, loss,
accuracy, it/s, ETA), one table row per epoch and the final summary. When stdout is not a
terminal (CI, pipes, files) it prints the same rows as plain aligned lines and no live bar.
Every line also goes to the run's log file through the ``annkit`` logger.

:class:`TensorBoardLogger` writes scalars per log interval (x = global step) and per epoch
(x = epoch, so runs with different batch sizes line up), the resolved config as text, and at
the end the hparams summary (the flattened config) with the run's real final metrics.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from annkit.loop import Hook
from annkit.models import LayerRow

log = logging.getLogger("annkit")

# (header, width) of the per-epoch table
EPOCH_COLUMNS = [
    ("epoch", 7), ("loss", 7), ("acc", 6), ("val loss", 8), ("val acc", 7),
    ("lr", 8), ("time", 6), ("samples/s", 9), ("", 1),
]


class SpeedColumn(ProgressColumn):
    """Batches per second (it/s), or seconds per epoch for the epoch bar, as rich measures it."""

    def render(self, task: Task) -> Text:
        per_epoch = task.description == "epoch"
        if not task.speed:
            text = "     – s/epoch" if per_epoch else "     – it/s"
        else:
            text = f"{1 / task.speed:6.1f} s/epoch" if per_epoch else f"{task.speed:6.1f} it/s"
        return Text(text, style="progress.data.speed")


def _epoch_table(cells: Sequence[str] | None) -> Table:
    table = Table(box=None, show_header=cells is None, header_style="bold", pad_edge=False, padding=(0, 1))
    for name, width in EPOCH_COLUMNS:
        table.add_column(name, width=width, justify="right", no_wrap=True)
    if cells is not None:
        table.add_row(*cells)
    return table


def format_row(row: Mapping[str, float], epochs: int, is_best: bool) -> list[str]:
    return [
        f"{int(row['epoch'])}/{epochs}",
        f"{row['train/loss']:.4f}",
        f"{row['train/accuracy']:.1%}",
        f"{row['val/loss']:.4f}",
        f"{row['val/accuracy']:.2%}",
        f"{row['lr']:.2e}",
        f"{row['epoch_s']:.1f}s",
        f"{row['samples_per_s']:,.0f}",
        "*" if is_best else "",
    ]


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (shorter to read and copy)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def logdir_hint(run_dir: Path) -> str:
    """The folder to give ``tensorboard --logdir`` so this run shows beside its siblings: the
    top folder of the run dir when it lies below the working directory (``outputs``)."""
    rel = Path(shown(run_dir))
    return str(run_dir) if rel.is_absolute() else rel.parts[0]


class ConsoleReporter(Hook):
    def __init__(self, console: Console, title: str = "annkit train") -> None:
        self.console = console
        self.title = title
        self.live = console.is_terminal and not console.is_dumb_terminal
        self.progress: Progress | None = None
        self.epochs = 0

    def print(self, *renderables: Any) -> None:
        target = self.progress.console if self.progress is not None else self.console
        target.print(*renderables)

    def header(self, facts: Sequence[tuple[str, str]], layers: Sequence[LayerRow], params: int) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold cyan", no_wrap=True)
        grid.add_column()
        for label, text in facts:
            grid.add_row(label, text)
            log.info("%s: %s", label, text)
        model = Table(title="model", title_justify="left", box=None, header_style="bold", pad_edge=False)
        model.add_column("#", justify="right")
        model.add_column("layer")
        model.add_column("output shape", justify="right")
        model.add_column("params", justify="right")
        for i, layer in enumerate(layers):
            shape = "×".join(str(s) for s in layer.output_shape)
            model.add_row(str(i), layer.kind, shape, f"{layer.params:,}" if layer.params else "")
            log.info("layer %d %s -> %s params=%d", i, layer.kind, shape, layer.params)
        model.add_row("", "[bold]total", "", f"[bold]{params:,}")
        self.console.print(Panel(Group(grid, Text(""), model), title=f"[bold]{self.title}", title_align="left", expand=False))

    def on_fit_start(self, *, epochs: int, steps_per_epoch: int) -> None:
        self.epochs = epochs
        self.console.print(_epoch_table(None))
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]{task.description:>6}"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                SpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.epoch_task = self.progress.add_task("epoch", total=epochs, stats="")
            self.batch_task = self.progress.add_task("batch", total=steps_per_epoch, stats="")
            self.progress.start()

    def on_step(self, step: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.batch_task)

    def on_log(self, *, step: int, epoch: int, lr: float, loss: float, accuracy: float) -> None:
        if self.progress is not None:
            self.progress.update(self.batch_task, stats=f"loss {loss:.4f} · acc {accuracy:6.2%} · lr {lr:.2e}")

    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None:
        cells = format_row(row, self.epochs, is_best)
        self.print(_epoch_table(cells))
        if not math.isfinite(row["train/loss"]):
            note = (
                f"warning: the training loss is {row['train/loss']} in epoch {int(row['epoch'])}: the run "
                f"diverged. Try a lower optimizer.lr, trainer.grad_clip=1.0, or model.norm=batch."
            )
            self.print(Text(note, style="bold yellow"))
            log.warning(note)
        log.info("epoch %s", " ".join(f"{name}={cell}" for (name, _), cell in zip(EPOCH_COLUMNS, cells)))
        if self.progress is not None:
            self.progress.update(self.epoch_task, advance=1, stats=f"val acc {row['val/accuracy']:.2%}")
            self.progress.reset(self.batch_task, stats="")

    def on_fit_end(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def summary(self, metrics: Mapping[str, Any], run_dir: Path) -> None:
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("split")
        table.add_column("loss", justify="right")
        table.add_column("accuracy", justify="right")
        for split in ("train", "val", "test"):
            m = metrics[split]
            table.add_row(split, f"{m['loss']:.4f}", f"{m['accuracy']:.2%}")
        stopped = " (stopped early)" if metrics.get("stopped_early") else ""
        lines = [
            f"best epoch {metrics['best_epoch']} of {metrics['epochs']}{stopped} · "
            f"{metrics['wall_s']:.1f} s wall · {metrics['samples_per_s']:,.0f} samples/s on {metrics['device']}",
            f"run dir     {shown(run_dir)}",
            f"tensorboard tensorboard --logdir {logdir_hint(run_dir)}",
        ]
        self.console.print(Panel(Group(table, Text(""), *(Text(s) for s in lines)), title="[bold]result", title_align="left", expand=False))
        log.info("result %s", json.dumps({k: metrics[k] for k in ("train", "val", "test", "best_epoch")}))


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}; lists become JSON strings, None "null", bools "true"/"false"."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool) or value is None:
            flat[name] = json.dumps(value)
        elif isinstance(value, (int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


class TensorBoardLogger(Hook):
    EPOCH_TAGS = {
        "train/loss": "train/loss",
        "train/accuracy": "train/accuracy",
        "val/loss": "val/loss",
        "val/accuracy": "val/accuracy",
        "lr": "epoch/lr",
        "train_s": "time/train_s",
        "epoch_s": "time/epoch_s",
        "samples_per_s": "time/samples_per_s",
    }

    def __init__(self, log_dir: Path, config_yaml: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))
        # four-space indent = a markdown code block in TensorBoard's text tab
        self.writer.add_text("config", "\n".join("    " + line for line in config_yaml.splitlines()), 0)

    def on_log(self, *, step: int, epoch: int, lr: float, loss: float, accuracy: float) -> None:
        self.writer.add_scalar("step/train_loss", loss, step)
        self.writer.add_scalar("step/train_accuracy", accuracy, step)
        self.writer.add_scalar("step/lr", lr, step)

    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None:
        epoch = int(row["epoch"])
        for key, tag in self.EPOCH_TAGS.items():
            self.writer.add_scalar(tag, row[key], epoch)
        self.writer.flush()

    def finish(self, config: Mapping[str, Any], final: Mapping[str, float], step: int) -> None:
        """Write the hparams summary (flattened config) and its metrics (``final``, real values)."""
        from torch.utils.tensorboard.summary import hparams

        hp = {k: v for k, v in flatten(config).items() if not k.endswith("._partial_")}
        experiment, start, end = hparams(hp, dict(final))
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary, step)
        for tag, value in final.items():
            self.writer.add_scalar(tag, value, step)
        self.close()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
