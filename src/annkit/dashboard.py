"""TensorBoard as a product surface: the tag scheme, its custom-scalars layout, the pictures and
the hparams of a run.

Tags (docs/tensorboard.md): a scalar is ``<metric>/<split>`` (``loss/train``, ``acc/val``,
``balanced_accuracy/val``), a per-class one ``<metric>/<split>/<class>`` (``recall/val/Bag``), x =
epoch, so runs with different batch sizes line up; ``step/*`` are per log interval (x = global
step). :func:`epoch_tag` maps a history row's keys to those tags, and :func:`layout` puts train and
val of each metric on one chart (the Custom Scalars dashboard).

:class:`Dashboard` is the loop hook that draws (matplotlib, Agg canvas, no pyplot state): a
confusion matrix at each evaluation, a decision-boundary picture of a 2-D dataset and a grid of
misclassified images every ``images_every`` epochs, and, opt-in, histograms of the weights,
biases, gradients and activations per layer. It only reads tensors at those points (the host
syncs of an image), never per step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from torch import nn

from annkit.data import Plane
from annkit.figures import picture
from annkit.head import Head
from annkit.loop import Hook
from annkit.models import LayerRow, eval_mode

# ── the tag scheme ──────────────────────────────────────────────────────────────────────────────

SHORT = {"accuracy": "acc"}  # the metrics with a short tag name
EPOCH_RENAMED = {
    "lr": "lr",
    "train_s": "time/train_s",
    "epoch_s": "time/epoch_s",
    "samples_per_s": "throughput/samples_per_s",
    "train/penalty": "loss/penalty",
}


def epoch_tag(key: str) -> str | None:
    """A history row's key → its TensorBoard tag: ``train/loss`` → ``loss/train``, ``val/accuracy``
    → ``acc/val``, ``val/recall/Bag`` → ``recall/val/Bag``, ``epoch_s`` → ``time/epoch_s``; None for
    the row's own bookkeeping (``epoch``, ``step``)."""
    if key in EPOCH_RENAMED:
        return EPOCH_RENAMED[key]
    if "/" not in key:
        return None
    split, metric = key.split("/", 1)
    name, _, member = metric.partition("/")
    return "/".join([SHORT.get(name, name), split, *([member] if member else [])])


def step_tag(name: str) -> str:
    """A per-log-interval training mean → ``step/<metric>_train`` (``step/loss_train``)."""
    return f"step/{SHORT.get(name, name)}_train"


def layout(task: str, penalty: bool) -> dict[str, dict[str, list[Any]]]:
    """The Custom Scalars layout: train and val of a metric on one chart, per run."""
    charts: dict[str, list[Any]] = {"loss (train, val)": ["Multiline", [r"^loss/(train|val)$"]]}
    if penalty:
        charts["data loss and L1/L2 penalty"] = ["Multiline", [r"^loss/(train|penalty)$"]]
    if task == "regression":
        charts["R² and MAE (val)"] = ["Multiline", [r"^(r2|mae)/val$"]]
    else:
        charts["accuracy (train, val)"] = ["Multiline", [r"^acc/(train|val)$"]]
        second = "balanced_accuracy" if task == "classification" else "macro_f1"
        charts[f"{second} (val)"] = ["Multiline", [rf"^{second}/val$"]]
    charts["learning rate"] = ["Multiline", [r"^lr$", r"^step/lr$"]]
    charts["speed"] = ["Multiline", [r"^throughput/samples_per_s$"]]
    per_class = {"classification": "recall", "multilabel": "f1", "regression": "r2"}[task]
    health = {f"{name} by layer": ["Multiline", [rf"^health/{tag}/"]] for name, tag in
              (("gradient norm", "grad_norm"), ("dead share", "dead"), ("saturated share", "saturated"),
               ("mean activation", "mean_activation"))}  # fmt: skip
    return {"annkit": charts, "per class": {f"{per_class} (val)": ["Multiline", [rf"^{per_class}/val/"]]},
            "layer health": health}  # fmt: skip


# the hparams every run records (besides the keys its command line or sweep sets)
KEY_CONFIG = (
    "dataset.name",
    "model.name",
    "model.hidden",
    "model.activation",
    "model.norm",
    "model.dropout",
    "loss.name",
    "optimizer.lr",
    "optimizer.weight_decay",
    "trainer.batch_size",
    "trainer.epochs",
    "trainer.seed",
)


def hparam_values(flat: Mapping[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], set[str]]:
    """The run's hparams and which of them its command line set.

    The hparams are :data:`KEY_CONFIG`, the optimizer and scheduler class, and every key the
    command line set (a sweep's varying keys among them; ``model=logistic`` as a group choice).
    Those set keys are marked as varying, so the HParams table shows them first (it shows 5
    hparams until you pick more). ``flat``: the resolved config, flattened (lists as JSON strings)."""
    hp: dict[str, Any] = {k: flat[k] for k in KEY_CONFIG if k in flat}
    varying: set[str] = set()
    for group in ("optimizer", "scheduler"):  # the class, e.g. AdamW, OneCycleLR (none: a constant lr)
        target = flat.get(f"{group}._target_")
        hp[group] = "none" if target in (None, "null") else str(target).rsplit(".", 1)[-1]
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.startswith("hydra.") or key == "resume":
            continue
        if key in flat:
            hp[key] = flat[key]
        elif any(k.startswith(f"{key}.") for k in flat) or "." not in key:
            hp[key] = value  # a group option (model=logistic), or a group outside the tree (experiment=…)
        else:
            continue
        varying.add(key)
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in sorted(hp.items())}, varying


def model_markdown(layers: Sequence[LayerRow], params: int, trainable: int) -> str:
    """The model summary as a markdown table (TensorBoard's Text dashboard)."""
    rows = ["| # | layer | output shape | params |", "|---:|---|---:|---:|"]
    for i, layer in enumerate(layers):
        shape = "×".join(str(s) for s in layer.output_shape)
        rows.append(f"| {i} | {layer.kind}{' (frozen)' if layer.frozen else ''} | {shape} | {layer.params:,} |")
    rows.append(f"| | **total** | | **{params:,}** |")
    if trainable != params:
        rows.append(f"| | trainable | | {trainable:,} |")
    return "\n".join(rows)


# ── pictures ───────────────────────────────────────────────────────────────────────────────────

ORANGE, BLUE = "#f59322", "#0877bd"  # TF Playground's negative and positive colours
PLAYGROUND = LinearSegmentedColormap.from_list("playground", [ORANGE, "#e8eaeb", BLUE])


def pixels(fig: Figure) -> np.ndarray:
    """The figure as an H×W×3 uint8 array (Agg canvas)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class ConfusionPlot:
    """A confusion matrix as a picture: rows true class, columns predicted; the colour is the row's
    share (recall on the diagonal), the number the count (blank for 0).

    The figure, its axes, tick labels and cell texts are made once; each :meth:`render` changes
    the data and redraws only the cells and the title over the saved background (Agg blitting),
    so a picture per evaluation stays cheap."""

    def __init__(self, names: Sequence[str]) -> None:
        k = self.k = len(names)
        side = max(3.2, 0.42 * k + 1.8)
        self.fig = Figure(figsize=(side + 0.6, side), dpi=90)
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.ax = self.fig.add_subplot()
        self.im = ax.imshow(np.zeros((k, k)), cmap="Blues", vmin=0, vmax=1)
        labels = [n if len(n) <= 12 else n[:11] + "…" for n in names]
        ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        size = 7 if k > 10 else 8
        self.texts = (
            [ax.text(j, i, "", ha="center", va="center", fontsize=size) for i in range(k) for j in range(k)]
            if k <= 20
            else []
        )
        self.title = ax.set_title(" ", fontsize=9)
        self.fig.tight_layout()
        moving = [self.im, *self.texts]  # the title stays (blank), so its place is laid out
        for artist in moving:
            artist.set_visible(False)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)
        for artist in moving:
            artist.set_visible(True)

    def render(self, matrix: Sequence[Sequence[int]], title: str) -> np.ndarray:
        counts = np.asarray(matrix, dtype=np.float64)
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        self.im.set_data(share)
        self.title.set_text(title)
        self.canvas.restore_region(self.background)
        self.ax.draw_artist(self.im)
        for spine in self.ax.spines.values():
            self.ax.draw_artist(spine)
        for text, count, value in zip(self.texts, counts.ravel(), share.ravel()):
            if count:
                text.set_text(f"{int(count)}")
                text.set_color("white" if value > 0.5 else "black")
                self.ax.draw_artist(text)
        self.fig.draw_artist(self.title)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


@torch.no_grad()
def boundary_figure(
    model: nn.Module,
    head: Head,
    plane: Plane,
    prepare: Callable[[torch.Tensor, bool], torch.Tensor],
    labels: Mapping[str, np.ndarray],
    title: str,
    resolution: int = 120,
) -> Figure:
    """The playground's picture: the background is the model's output over the plane (P(positive)
    for two classes, the winning class shaded by its probability for more, the value for
    regression), the points the data — train filled, test ringed in black."""
    x0, x1, y0, y1 = plane.extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    device = next(model.parameters()).device
    with eval_mode(model):
        out = head.activate(model(prepare(torch.as_tensor(plane.inputs(grid), device=device), False)))
    out = out.float().cpu().numpy()
    fig = picture((4.2, 4.0), dpi=90)  # a notebook shows it inline
    ax = fig.add_subplot()
    k = head.k
    if head.task == "classification" and k > 2:
        colors = np.asarray([[*c[:3]] for c in (_tab(i) for i in range(k))])
        best, conf = out.argmax(axis=1), out.max(axis=1)
        alpha = ((conf - 1 / k) / (1 - 1 / k)).clip(0, 1)[:, None] * 0.7
        rgb = colors[best] * alpha + (1 - alpha)
        ax.imshow(rgb.reshape(resolution, resolution, 3), origin="lower", extent=plane.extent, aspect="auto")
        point_colors = {split: colors[labels[split].astype(int)] for split in plane.points}
    else:
        value = out[:, -1] if head.task == "classification" else out[:, 0]
        lo, hi = (0.0, 1.0) if head.task != "regression" else (float(value.min()), float(value.max()) + 1e-9)
        ax.imshow(
            value.reshape(resolution, resolution),
            origin="lower",
            extent=plane.extent,
            aspect="auto",
            cmap=PLAYGROUND,
            vmin=lo,
            vmax=hi,
        )
        ax.contour(
            gx, gy, value.reshape(resolution, resolution), levels=[(lo + hi) / 2], colors="#555555", linewidths=0.8
        )
        first = {split: y[:, 0] if y.ndim > 1 else y for split, y in labels.items()}  # a class 0/1, or the value
        point_colors = {split: PLAYGROUND((first[split] - lo) / (hi - lo)) for split in first}
    for split, marker in (
        ("train", {"edgecolors": "white", "linewidths": 0.6}),
        ("test", {"edgecolors": "black", "linewidths": 1.0}),
    ):
        if split in plane.points and len(plane.points[split]):
            pts = plane.points[split]
            ax.scatter(pts[:, 0], pts[:, 1], s=14, c=point_colors[split], label=split, **marker)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel(plane.axes[0])
    ax.set_ylabel(plane.axes[1])
    if any(len(pts) for pts in plane.points.values()):
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _tab(i: int) -> tuple[float, ...]:
    from matplotlib import colormaps

    return colormaps["tab10"](i % 10)


def misclassified_figure(
    images: np.ndarray, true: Sequence[int], pred: Sequence[int], names: Sequence[str], title: str, columns: int = 8
) -> Figure:
    """A grid of misclassified images, each captioned "true → predicted" (one axes, one montage)."""
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    h, w = images.shape[1:3]
    gap = 12  # caption room above each tile, in pixels
    montage = np.zeros((rows * (h + gap), columns * (w + 2)), dtype=np.uint8)  # ink on white: 0 is paper
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        montage[r * (h + gap) + gap : r * (h + gap) + gap + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = img
    fig = Figure(figsize=(columns * 1.15, rows * 1.3 + 0.4), dpi=90)
    ax = fig.add_subplot()
    ax.imshow(montage, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    short = [n if len(n) <= 9 else n[:8] + "…" for n in names]
    for i in range(n):
        r, c = divmod(i, columns)
        ax.text(
            c * (w + 2) + 1 + w / 2,
            r * (h + gap) + gap - 2,
            f"{short[true[i]]}→{short[pred[i]]}",
            ha="center",
            va="bottom",
            fontsize=6.5,
            color="#b00020",
        )
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=1 - 0.35 / (rows * 1.3 + 0.4)
    )  # no tight_layout: one draw
    return fig


# ── the hook ───────────────────────────────────────────────────────────────────────────────────


class Timed:
    """``seconds``: the time spent inside ``with self.timed():`` blocks (what logging cost)."""

    seconds: float = 0.0
    _timing: bool = False  # inside a timed block: an inner one adds nothing (no time is counted twice)

    @contextmanager
    def timed(self) -> Iterator[None]:
        if self._timing:
            yield
            return
        start, self._timing = time.perf_counter(), True
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start
            self._timing = False


class Dashboard(Timed, Hook):
    """Pictures and histograms into ``writer`` (a SummaryWriter) during :func:`annkit.loop.fit`.

    ``images_every``: decision boundary and misclassified grid every N epochs and at the last one
    (0: never); ``confusion``: a confusion-matrix image at the same cadence (every evaluation when
    ``images_every`` is 0: TensorBoard keeps 10 images a tag by default, so one per epoch of a long
    run is drawn for nothing); ``histograms_every``:
    weights, biases, gradients and activations per dense layer every N epochs (0: off).
    ``seconds`` adds up the time spent here (the cost of the pictures)."""

    def __init__(
        self,
        writer: Any,
        model: nn.Module,
        head: Head,
        *,
        names: Sequence[str],
        prepare: Callable[[torch.Tensor, bool], torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        plane: Plane | None,
        images: bool,
        labels: Mapping[str, np.ndarray] | None = None,
        images_every: int = 10,
        confusion: bool = True,
        histograms_every: int = 0,
        misclassified: int = 32,
        resolution: int = 120,
        epochs: int = 1,
    ) -> None:
        self.writer, self.model, self.head, self.names, self.prepare = writer, model, head, list(names), prepare
        self.val_x, self.val_y = val
        self.plane, self.labels, self.images = plane, labels or {}, images
        self.images_every, self.confusion, self.histograms_every = images_every, confusion, histograms_every
        self.misclassified, self.resolution, self.epochs = misclassified, resolution, epochs
        self.plot: ConfusionPlot | None = None
        self.seconds = 0.0

    def due(self, every: int, epoch: int) -> bool:
        return every > 0 and (epoch % every == 0 or epoch == self.epochs)

    def on_fit_start(self, *, epochs: int, steps_per_epoch: int) -> None:
        self.epochs = epochs

    def on_eval(self, epoch: int, report: Mapping[str, Any]) -> None:
        if not (self.confusion and "confusion_matrix" in report and self.due(self.images_every or 1, epoch)):
            return
        with self.timed():
            self.plot = self.plot or ConfusionPlot(self.names)
            self.writer.add_image(
                "confusion/val",
                self.plot.render(
                    report["confusion_matrix"], f"validation, epoch {epoch}: accuracy {report['accuracy']:.2%}"
                ),
                epoch,
                dataformats="HWC",
            )

    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None:
        epoch = int(row["epoch"])
        with self.timed():
            if self.due(self.images_every, epoch):
                summary = self.caption(row)
                if self.plane is not None:
                    self.image(
                        "boundary",
                        boundary_figure(
                            self.model,
                            self.head,
                            self.plane,
                            self.prepare,
                            self.labels,
                            f"epoch {epoch} · {summary}",
                            self.resolution,
                        ),
                        epoch,
                    )
                if self.images and self.head.task == "classification":
                    self.misclassified_grid(epoch, summary)
            if self.due(self.histograms_every, epoch):
                self.histograms(epoch)

    def caption(self, row: Mapping[str, float]) -> str:
        if self.head.task == "regression":
            return f"train loss {row['train/loss']:.3f} · val loss {row['val/loss']:.3f}"
        return f"train loss {row['train/loss']:.3f} · val acc {row['val/accuracy']:.1%}"

    def test(self, report: Mapping[str, Any], step: int) -> None:
        """The test split's confusion matrix (after training, with the best weights)."""
        if self.confusion and "confusion_matrix" in report:
            with self.timed():
                self.plot = self.plot or ConfusionPlot(self.names)
                self.writer.add_image(
                    "confusion/test",
                    self.plot.render(
                        report["confusion_matrix"], f"test, best weights: accuracy {report['accuracy']:.2%}"
                    ),
                    step,
                    dataformats="HWC",
                )

    def image(self, tag: str, fig: Figure, step: int) -> None:
        self.writer.add_image(tag, pixels(fig), step, dataformats="HWC")

    @torch.no_grad()
    def misclassified_grid(self, epoch: int, summary: str) -> None:
        x, y = self.val_x[:1024], self.val_y[:1024]
        with eval_mode(self.model):
            pred = self.head.predict(self.model(self.prepare(x, False)))
        wrong = torch.nonzero(pred != y).flatten()[: self.misclassified]
        if len(wrong) == 0:
            return
        images = x[wrong].cpu().numpy()
        images = images.reshape(len(wrong), *images.shape[-2:]) if images.ndim > 3 and images.shape[1] == 1 else images
        self.image(
            "misclassified/val",
            misclassified_figure(
                images,
                y[wrong].tolist(),
                pred[wrong].tolist(),
                self.names,
                f"epoch {epoch}: {len(wrong)} of the first {len(x):,} validation images that are wrong · {summary}",
            ),
            epoch,
        )

    @torch.no_grad()
    def histograms(self, epoch: int) -> None:
        """Per dense layer: weights, biases, their gradients (the epoch's last step) and the
        activations of a validation batch (after the layer's activation function; logits for the head)."""
        blocks = self.model.dense_layers()  # type: ignore[operator]
        seen: dict[int, torch.Tensor] = {}
        handles = [
            block[-1].register_forward_hook(lambda _m, _i, out, i=i: seen.__setitem__(i, out.detach()))
            for i, block in enumerate(blocks)
        ]
        try:
            with eval_mode(self.model):
                self.model(self.prepare(self.val_x[:512], False))
        finally:
            for handle in handles:
                handle.remove()
        for i, block in enumerate(blocks):
            linear = block[0]
            self.writer.add_histogram(f"weights/layer{i}", linear.weight, epoch)
            if linear.bias is not None:
                self.writer.add_histogram(f"biases/layer{i}", linear.bias, epoch)
            for name, p in (("weight", linear.weight), ("bias", linear.bias)):
                if p is not None and p.grad is not None:
                    self.writer.add_histogram(f"grads/layer{i}.{name}", p.grad, epoch)
            if i in seen:
                self.writer.add_histogram(f"activations/layer{i}", seen[i].float(), epoch)
