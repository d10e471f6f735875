"""What a run shows and records: the rich console and TensorBoard.

:class:`ConsoleReporter` prints the header, a live progress bar (epochs and batches, loss,
accuracy, it/s, ETA), one table row per epoch and the final summary. When stdout is not a
terminal (CI, pipes, files) it prints the same rows as plain aligned lines and no live bar.
Every line also goes to the run's log file through the ``annkit`` logger.

:class:`TensorBoardLogger` writes scalars per log interval (x = global step) and per epoch
(x = epoch, so runs with different batch sizes line up) under the tag scheme of
:mod:`annkit.dashboard`, the resolved config and the model summary as text, the custom-scalars
layout, and at the end the hparams summary with the run's real final metrics.
"""

from __future__ import annotations

import json
import logging
import math
import re
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from annkit.commands import command, override, shown
from annkit.dashboard import Timed, epoch_tag, layout, step_tag
from annkit.loop import Hook
from annkit.models import LayerRow

log = logging.getLogger("annkit")

# (header, width, row key, format) of the per-epoch table's columns
Column = tuple[str, int, str, str]
PERCENT, DECIMAL = "{:.2%}", "{:.4f}"


def epoch_columns(task: str, penalty: bool) -> list[Column]:
    """The per-epoch table's columns for ``task`` (and a penalty column when L1/L2 is on)."""
    cols: list[Column] = [("epoch", 7, "epoch", ""), ("loss", 7, "train/loss", DECIMAL)]
    if penalty:
        cols.append(("penalty", 7, "train/penalty", DECIMAL))
    if task == "regression":
        cols += [
            ("val loss", 8, "val/loss", DECIMAL),
            ("val MAE", 8, "val/mae", DECIMAL),
            ("val R²", 7, "val/r2", DECIMAL),
        ]
    else:
        cols += [
            ("acc", 6, "train/accuracy", "{:.1%}"),
            ("val loss", 8, "val/loss", DECIMAL),
            ("val acc", 7, "val/accuracy", PERCENT),
        ]
        cols.append(
            ("val bal", 7, "val/balanced_accuracy", PERCENT)
            if task == "classification"
            else ("val F1", 7, "val/macro_f1", DECIMAL)
        )
    return [
        *cols,
        ("lr", 8, "lr", "{:.2e}"),
        ("time", 6, "epoch_s", "{:.1f}s"),
        ("samples/s", 9, "samples_per_s", "{:,.0f}"),
        ("", 1, "", ""),
    ]


def fit_columns(columns: list[Column], width: int) -> list[Column]:
    """The columns that fit ``width`` (each column takes its width plus a space): the epoch's time, then
    samples/s, go first when the terminal is narrow (both stay in metrics.json and TensorBoard)."""
    kept = list(columns)
    for optional in ("time", "samples/s"):
        if sum(w + 1 for _, w, _, _ in kept) <= width:
            break
        kept = [c for c in kept if c[0] != optional]
    return kept


# the summary's metric columns per task: (header, report key, format)
SUMMARY_COLUMNS = {
    "classification": [
        ("loss", "loss", DECIMAL),
        ("accuracy", "accuracy", PERCENT),
        ("balanced acc", "balanced_accuracy", PERCENT),
    ],
    "multilabel": [
        ("loss", "loss", DECIMAL),
        ("accuracy", "accuracy", PERCENT),
        ("macro F1", "macro_f1", DECIMAL),
        ("exact match", "exact_match", PERCENT),
    ],
    "regression": [("loss", "loss", DECIMAL), ("MSE", "mse", DECIMAL), ("MAE", "mae", DECIMAL), ("R²", "r2", DECIMAL)],
}


class SpeedColumn(ProgressColumn):
    """Batches per second (it/s), or seconds per epoch for the epoch bar, as rich measures it."""

    def render(self, task: Task) -> Text:
        per_epoch = task.description == "epoch"
        if not task.speed:
            text = "     – s/epoch" if per_epoch else "     – it/s"
        else:
            text = f"{1 / task.speed:6.1f} s/epoch" if per_epoch else f"{task.speed:6.1f} it/s"
        return Text(text, style="progress.data.speed")


def _epoch_table(columns: Sequence[Column], cells: Sequence[str] | None) -> Table:
    table = Table(box=None, show_header=cells is None, header_style="bold", pad_edge=False, padding=(0, 0, 0, 1))
    for name, width, _, _ in columns:
        table.add_column(name, width=width, justify="right", no_wrap=True)
    if cells is not None:
        table.add_row(*cells)
    return table


def fitted(value: float, fmt: str, width: int) -> str:
    """``value`` in ``fmt``, or, when that is wider than the column, in as many significant digits of
    fewer decimals or scientific notation as fit (123.45678 shows as 123.457, a loss of 226288.1 as 2.3e+05,
    never cut to '226288…')."""
    text = fmt.format(value)
    if len(text) <= width or not math.isfinite(value):
        return text
    fixed = re.fullmatch(r"\{:\.(\d)f\}", fmt)
    for decimals in range(int(fixed.group(1)) - 1, -1, -1) if fixed else ():
        text = f"{value:.{decimals}f}"
        if len(text) <= width and abs(value) < 1e4:
            return text
    for digits in (3, 2, 1, 0):
        short = f"{value:.{digits}e}"
        if len(short) <= width:
            return short
    return short


def format_row(row: Mapping[str, float], columns: Sequence[Column], epochs: int, is_best: bool) -> list[str]:
    cells = []
    for _, width, key, fmt in columns:
        if key == "epoch":
            cells.append(f"{int(row['epoch'])}/{epochs}")
        elif not key:
            cells.append("*" if is_best else "")
        else:
            cells.append(fitted(row[key], fmt, width) if key in row else "–")
    return cells


def _cell(report: Mapping[str, Any], key: str, fmt: str) -> str:
    value = report.get(key)
    return "–" if value is None or value != value else fmt.format(value)  # absent, or NaN (a class with no samples)


def logdir_hint(run_dir: Path) -> str:
    """The folder to give ``annkit board logdir=`` (``tensorboard --logdir``) so this run shows beside its siblings: the
    top folder of the run dir when it lies below the working directory (``outputs``)."""
    rel = Path(shown(run_dir))
    return str(run_dir) if rel.is_absolute() else rel.parts[0]


def facts_grid(facts: Sequence[tuple[str, str]]) -> Table:
    """A header's "label  text" lines as a two-column grid; each line also goes to the run's log. Long
    text wraps (folds), it is never cut with an ellipsis."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text in facts:
        grid.add_row(label, text)
        log.info("%s: %s", label or "note", text)
    return grid


def facts_panel(
    console: Console,
    title: str,
    facts: Sequence[tuple[str, str]],
    rest: Sequence[Any] = (),
    after: Sequence[tuple[str, str]] = (),
) -> None:
    """A panel of facts (then ``rest``), as wide as the terminal allows. A fact whose text starts with a
    path too long for the panel, and every line of ``after`` (the run dir, the command that shows it),
    are printed below the panel, each whole on one line, so that a path or a command copies as one."""
    width = max((len(label) for label, _ in [*facts, *after]), default=0)
    room = console.width - 4 - width - 2  # the panel's borders and padding, the grid's gap

    def fits(text: str) -> bool:
        first = text.split(" ", 1)[0]
        return "/" not in first or len(first) <= room

    outside = [(label, text) for label, text in facts if not fits(text)]
    grid = facts_grid([fact for fact in facts if fits(fact[1])])
    console.print(Panel(Group(grid, *rest), title=f"[bold]{title}", title_align="left", expand=False))
    for label, text in [*outside, *after]:
        log.info("%s: %s", label, text)
        path, _, rest = text.partition(" ") if (label, text) in outside else (text, "", "")
        console.print(Text(f"{label:<{width}}  ", style="bold cyan") + Text(path), soft_wrap=True)
        if rest:  # what follows the path, wrapped below it
            indent = " " * (width + 2)
            console.print(
                Text(textwrap.fill(rest, console.width, initial_indent=indent, subsequent_indent=indent)),
                soft_wrap=True,
            )


def live_display(console: Console) -> bool:
    """Whether a live progress bar can be drawn: on a terminal (not in a pipe or a dumb one), or in Jupyter when
    ipywidgets is installed (rich draws the bar in an Output widget, closed when the run ends)."""
    if console.is_jupyter:
        import importlib.util

        return importlib.util.find_spec("ipywidgets") is not None
    return console.is_terminal and not console.is_dumb_terminal


class ConsoleReporter(Hook):
    def __init__(
        self,
        console: Console,
        title: str = "annkit train",
        *,
        task: str = "classification",
        penalty: bool = False,
        print_every: int = 1,
    ) -> None:
        self.console = console
        self.print_every = print_every
        self.diverged = False
        self.title = title
        self.task = task
        self.columns = fit_columns(epoch_columns(task, penalty), console.width)
        self.live = live_display(console)
        self.progress: Progress | None = None
        self.narrow = False
        self.epochs = 0

    def print(self, *renderables: Any) -> None:
        target = self.progress.console if self.progress is not None else self.console
        target.print(*renderables)

    def warn(self, note: str) -> None:
        """A warning the user must see: printed in yellow and written to the run's log."""
        self.print(Text(f"warning: {note}", style="bold yellow"))
        log.warning(note)

    def header(self, facts: Sequence[tuple[str, str]], layers: Sequence[LayerRow], params: int) -> None:
        model = Table(title="model", title_justify="left", box=None, header_style="bold", pad_edge=False)
        model.add_column("#", justify="right")
        model.add_column("layer")
        model.add_column("output shape", justify="right")
        model.add_column("params", justify="right")
        for i, layer in enumerate(layers):
            shape = "×".join(str(s) for s in layer.output_shape)
            model.add_row(
                str(i),
                layer.kind + (" [dim](frozen)[/]" if layer.frozen else ""),
                shape,
                f"{layer.params:,}" if layer.params else "",
            )
            log.info("layer %d %s -> %s params=%d", i, layer.kind, shape, layer.params)
        model.add_row("", "[bold]total", "", f"[bold]{params:,}")
        run_dir = [fact for fact in facts if fact[0] == "run dir"]
        facts_panel(
            self.console, self.title, [fact for fact in facts if fact[0] != "run dir"], [Text(""), model], after=run_dir
        )

    def on_fit_start(self, *, epochs: int, steps_per_epoch: int) -> None:
        self.epochs = epochs
        self.console.print(_epoch_table(self.columns, None))
        if self.live:
            self.narrow = self.console.width < 110  # a shorter bar, and no lr in the line (the table has it)
            self.progress = Progress(
                TextColumn("[bold]{task.description:>6}"),
                BarColumn(bar_width=10 if self.narrow else 30),
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

    def on_log(self, *, step: int, epoch: int, lr: float, metrics: dict[str, float]) -> None:
        if self.progress is not None:
            acc = f" · acc {metrics['accuracy']:6.2%}" if "accuracy" in metrics else ""
            self.progress.update(
                self.batch_task, stats=f"loss {metrics['loss']:.4f}{acc}" + ("" if self.narrow else f" · lr {lr:.2e}")
            )

    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None:
        cells = format_row(row, self.columns, self.epochs, is_best)
        epoch = int(row["epoch"])
        if epoch % self.print_every == 0 or epoch in (1, self.epochs):
            self.print(_epoch_table(self.columns, cells))
        bad = [k for k in ("train/loss", "val/loss") if not math.isfinite(row[k])]
        if bad and not self.diverged:
            self.diverged = True  # say it once, not every epoch after
            self.warn(
                f"the {' and '.join(k.replace('/', ' ') for k in bad)} is {row[bad[0]]} in epoch {int(row['epoch'])}: the run "
                f"diverged. Try a lower optimizer.lr, trainer.grad_clip=1.0, or model.norm=batch."
            )
        log.info("epoch %s", " ".join(f"{c[0] or 'best'}={cell}" for c, cell in zip(self.columns, cells)))
        if self.progress is not None:
            key = "val/r2" if self.task == "regression" else "val/accuracy"
            self.progress.update(self.epoch_task, advance=1, stats=f"{key} {row[key]:.4g}")
            self.progress.reset(self.batch_task, stats="")

    def on_fit_end(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def summary(self, metrics: Mapping[str, Any], run_dir: Path, extra: Sequence[Any] = ()) -> None:
        """The result panel: the splits' metrics, the per-class tables, ``extra`` (the layer table), the run."""
        columns = SUMMARY_COLUMNS[self.task]
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("split")
        for name, _, _ in columns:
            table.add_column(name, justify="right")
        for split in ("train", "val", "test"):
            table.add_row(split, *(_cell(metrics[split], key, fmt) for _, key, fmt in columns))
        parts: list[Any] = [table]
        tables = per_class(
            self.task, {"val": metrics["val"], "test": metrics["test"]}, metrics["data"].get("train_class_counts", {})
        )
        for group in (tables, list(extra)):
            parts += [Text(""), *group] if group else []
        stopped = " (stopped early)" if metrics.get("stopped_early") else ""
        if metrics.get("skipped_batches"):
            stopped += f" · {metrics['skipped_batches']} batches skipped (loss not finite)"
        parts += [
            Text(""),
            Text(
                (
                    f"best epoch {metrics['best_epoch']} of {metrics['epochs']}{stopped} · "
                    if metrics["epochs"]
                    else "nothing trained (trainer.epochs=0): the starting weights, scored · "
                )
                + f"{metrics['wall_s']:.1f} s wall · "
                + (f"{metrics['samples_per_s']:,.0f} samples/s on " if metrics["epochs"] else "on ")
                + metrics["device"]
            ),
        ]
        self.console.print(Panel(Group(*parts), title="[bold]result", title_align="left", expand=False))
        next_lines(self.console, run_dir)
        log.info("result %s", json.dumps({k: metrics[k] for k in ("train", "val", "test", "best_epoch")}))


def next_lines(console: Console, run_dir: Path, files: str = "") -> None:
    """Below a result panel, each whole on its own line: the run dir, the files it holds (when
    given) and the command that shows it."""
    facts_width = len("tensorboard")
    lines = (
        ("run dir", shown(run_dir)),
        *((("files", files),) if files else ()),
        ("tensorboard", command("board", override("logdir", logdir_hint(run_dir)))),
    )
    for label, text in lines:
        log.info("%s: %s", label, text)
        console.print(Text(f"{label:<{facts_width}}  ", style="bold cyan") + Text(text), soft_wrap=True)


def per_class(
    task: str, reports: Mapping[str, Mapping[str, Any]], counts: Mapping[str, int], counts_header: str = "train n"
) -> list[Any]:
    """Per class: a count column and each report's recall (``reports``: split → report, in column
    order), then the last report's confusion matrix (K ≤ 10); per label: the last report's accuracy
    and F1. Nothing for regression or more than 20 classes."""
    last = list(reports)[-1]
    final = reports[last]
    if task == "classification" and len(final["recall"]) <= 20:
        names = list(final["recall"])
        table = Table(box=None, header_style="bold", pad_edge=False)
        for header in ("class", counts_header, *(f"{split} recall" for split in reports)):
            table.add_column(header, justify="left" if header == "class" else "right")
        for i, name in enumerate(names):
            table.add_row(
                f"{i} {name}",
                f"{counts.get(name, 0):,}",
                *(_cell(report["recall"], name, "{:.1%}") for report in reports.values()),
            )
        parts: list[Any] = [Text("per class", style="bold"), table]
        if len(names) <= 10:
            matrix = Table(box=None, header_style="bold", pad_edge=False)
            matrix.add_column("true ↓ predicted →", justify="right")
            for j in range(len(names)):
                matrix.add_column(str(j), justify="right")
            for i, row in enumerate(final["confusion_matrix"]):
                matrix.add_row(str(i), *(str(v) for v in row))
            parts += [Text(""), Text(f"{last} confusion matrix (class numbers as above)", style="bold"), matrix]
        return parts
    if task == "multilabel":
        table = Table(box=None, header_style="bold", pad_edge=False)
        for header in ("label", "accuracy", "F1"):
            table.add_column(header, justify="left" if header == "label" else "right")
        for name in final["f1"]:
            table.add_row(name, _cell(final["label_accuracy"], name, PERCENT), _cell(final["f1"], name, DECIMAL))
        return [Text(f"per label ({last})", style="bold"), table]
    return []


class TensorBoardLogger(Timed, Hook):
    """Scalars under annkit's tag scheme (:mod:`annkit.dashboard`): per epoch every metric of the
    row (``loss/train``, ``acc/val``, ``recall/val/<class>``, ``lr``, ``time/*``,
    ``throughput/samples_per_s``; x = epoch), per log interval ``step/*`` (x = global step), and at
    the end the hparams of the run with its real final metrics (``final/*``). ``seconds`` adds up
    the time spent writing (the cost of logging, which metrics.json reports)."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        """``purge_step``: a resumed run's first step. TensorBoard then hides the events an earlier
        process wrote at that step or later (after its last checkpoint), so curves do not double."""
        from torch.utils.tensorboard import SummaryWriter

        started = time.perf_counter()
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        self.resumed = purge_step is not None
        self.seconds = time.perf_counter() - started

    def config(self, config_yaml: str) -> None:
        """The run's config as text (a new run's; a resumed one wrote it already): four-space indent = a markdown
        code block in TensorBoard's text tab."""
        if not self.resumed:
            with self.timed():
                self.writer.add_text("config", "\n".join("    " + line for line in config_yaml.splitlines()), 0)

    def describe(self, task: str, penalty: bool, model_markdown: str) -> None:
        """A new run's custom-scalars layout (train and val on one chart) and its model summary."""
        with self.timed():
            self.writer.add_custom_scalars(layout(task, penalty))
            self.writer.add_text("model", model_markdown, 0)

    def scalar(self, tag: str, value: float, step: int) -> None:
        with self.timed():
            self.writer.add_scalar(tag, value, step)

    def on_log(self, *, step: int, epoch: int, lr: float, metrics: dict[str, float]) -> None:
        with self.timed():
            for name, value in metrics.items():
                self.writer.add_scalar(step_tag(name), value, step)
            self.writer.add_scalar("step/lr", lr, step)

    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None:
        with self.timed():
            epoch = int(row["epoch"])
            for key, value in row.items():
                tag = epoch_tag(key)
                if tag is not None:
                    self.writer.add_scalar(tag, value, epoch)
            self.writer.flush()

    def text(self, tag: str, markdown: str, step: int) -> None:
        with self.timed():
            self.writer.add_text(tag, markdown, step)

    def finish(
        self,
        hparams: Mapping[str, Any],
        final: Mapping[str, float],
        step: int,
        varying: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Write the run's hparams (see :func:`annkit.dashboard.hparam_values`; ``varying``: those
        the command line set, shown first) and its metrics (``final``, real values: the HParams
        table's columns), then close."""
        from tensorboard.plugins.hparams import plugin_data_pb2
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        with self.timed():
            experiment, start, end = hparams_summary(dict(hparams), dict(final))
            # mark the varying hparams (torch leaves `differs` unset): TensorBoard lists them first
            meta = experiment.value[0].metadata.plugin_data
            data = plugin_data_pb2.HParamsPluginData.FromString(meta.content)
            for info in data.experiment.hparam_infos:
                info.differs = info.name in varying
            meta.content = data.SerializeToString()
            for summary in (experiment, start, end):
                self.writer.file_writer.add_summary(summary, step)
            for tag, value in final.items():
                self.writer.add_scalar(tag, value, step)
            self.close()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
