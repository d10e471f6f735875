"""Figures annkit hands to Python: matplotlib on an Agg canvas (no pyplot state, no window, any thread), that a
notebook shows inline by itself (``_repr_png_``), and the training curves of a run's history.

A :class:`Picture` is a plain :class:`matplotlib.figure.Figure`: ``fig.savefig(…)``, ``fig.axes`` and the rest work
as usual. In Jupyter the last expression of a cell that is a Picture is drawn as a PNG, once (IPython's own
matplotlib formatter, when ``%matplotlib inline`` registered it, takes precedence over ``_repr_png_``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


class Picture(Figure):
    """A Figure on an Agg canvas that renders itself as a PNG in a notebook."""

    def _repr_png_(self) -> bytes:
        png = io.BytesIO()
        self.savefig(png, format="png")
        return png.getvalue()


def picture(figsize: tuple[float, float], dpi: int = 100) -> Picture:
    """A new :class:`Picture` with its Agg canvas."""
    fig = Picture(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def metric_of(history: Sequence[dict[str, Any]], best_metric: str | None) -> str | None:
    """The validation metric drawn beside the loss: the one the run kept its best epoch by, unless that is the loss
    itself (then R², accuracy or MAE, the first the history has)."""
    keys = history[0].keys() if history else ()
    if best_metric and best_metric in keys and not best_metric.endswith("loss"):
        return best_metric
    return next((k for k in ("val/accuracy", "val/r2", "val/mae") if k in keys), None)


def history_figure(history: Sequence[dict[str, Any]], best_metric: str | None = None,
                   best_epoch: int | None = None, title: str = "") -> Picture:  # fmt: skip
    """The loss curves (train, val) by epoch and the validation metric (with its train counterpart when the history
    has one), the best epoch marked with a dotted line."""
    metric = metric_of(history, best_metric)
    fig = picture((10 if metric else 5.5, 3.8))
    axes = fig.subplots(1, 2 if metric else 1, squeeze=False)[0]
    epochs = [row["epoch"] for row in history]
    panels = [(axes[0], "loss", ["train/loss", "val/loss"])]
    if metric:
        panels.append((axes[1], metric.split("/", 1)[1], ["train/" + metric.split("/", 1)[1], metric]))
    for ax, name, keys in panels:
        for key, color in zip(keys, ("C0", "C1")):
            points = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) is not None]
            if points:
                ax.plot(*zip(*points), color=color, marker="." if len(points) < 30 else None,
                        label=key.split("/", 1)[0])  # fmt: skip
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.5", ls=":", lw=1, label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
