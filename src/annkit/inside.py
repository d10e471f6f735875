"""Inside the network during training: layer health every epoch, and its pictures at the image cadence.

:class:`Inside` is a loop hook. Every epoch it measures each hidden layer's health on a fixed validation batch
(:mod:`annkit.probes`: the dead share of a ReLU-family layer, the saturated share of a sigmoid/tanh layer, the mean
activation) and every ``log_every`` steps (and at each epoch's last step) each dense layer's gradient norm, kept on
the device until the epoch's end, where one host read takes them all. It writes them to TensorBoard
(``health/<measure>/layer<i>``), warns once per layer when more than ``warn_share`` of it is dead or saturated, and
keeps the per-epoch record metrics.json holds (:meth:`Inside.record`).

At the image cadence (``logger.images_every``) it logs the pictures of :func:`render` — every layer's unit maps
(2-D data), the network diagram, the first layer's weights (image data) — so TensorBoard's step slider plays
training back; :meth:`Inside.finish` writes them once more as PNGs, with the weights the run kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annkit.dashboard import Timed, boundary_figure, pixels
from annkit.data import Plane
from annkit.diagram import diagram_columns, diagram_figure, filter_figure, filter_grid, shown_units
from annkit.figures import Picture
from annkit.head import Head
from annkit.loop import Hook
from annkit.models import MLP
from annkit.probes import DEAD_FAMILY, HEALTH, SATURATION_Z, by_norm, grad_norms, layer_health, layer_values, strongest
from annkit.unit_maps import plane_layers, unit_map_figure


@dataclass
class Views:
    """What the pictures of a network need besides its weights."""

    head: Head
    prepare: Callable[[torch.Tensor, bool], torch.Tensor]
    features: list[str]  # the input features' names (pixels: "px r,c")
    plane: Plane | None = None  # 2-D data: the plane the unit maps cover
    image_shape: tuple[int, int] | None = None  # image data: H, W of the first layer's weight pictures
    points: tuple[np.ndarray, np.ndarray] | None = None  # training points (N×2, labels) drawn over the unit maps
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)  # split → labels, for the boundary's points
    max_units: int = 16
    resolution: int = 40
    unit_maps: bool = True
    diagram: bool = True
    first_layer: int = 64

    @property
    def outputs(self) -> list[str]:
        names = self.head.names
        return [f"P({names[-1]})"] if self.head.single_output else [str(n) for n in names]


def render(model: MLP, views: Views, caption: str = "", *, boundary: bool = False,
           board: bool = False) -> dict[str, Any]:  # fmt: skip
    """The pictures of ``model`` by tag: ``units/input``, ``units/layer<i>``, ``units/output`` (2-D data),
    ``diagram``, ``first_layer`` (image data) and, with ``boundary``, ``boundary`` (2-D data): Figures, or with
    ``board`` (TensorBoard's copies during training) the first layer's bare grid as an array and a smaller diagram,
    which cost a third of the time."""
    out: dict[str, Any] = {}
    plane = views.plane
    if plane is not None and views.unit_maps:
        n = views.max_units
        for layer in plane_layers(model, views.head, plane, views.prepare, views.features,
                                  resolution=views.resolution, pick=lambda w: strongest(w, n)):  # fmt: skip
            points = views.points if layer.name == "output" else None  # the hidden units' lines, unobstructed
            out[f"units/{layer.name.replace(' ', '')}"] = unit_map_figure(layer, plane, caption, points)
    if views.diagram:
        maps = None
        if plane is not None:
            maps = plane_layers(model, views.head, plane, views.prepare, views.features, resolution=24,
                                pick=lambda w: shown_units(w, views.max_units))  # fmt: skip
        columns = diagram_columns(model, views.features, views.outputs, views.max_units, maps)
        out["diagram"] = diagram_figure(model, columns, caption, dpi=64 if board else 90, names=not board)
    if views.image_shape is not None and views.first_layer:
        first = model.dense_layers()[0][0].weight
        out["first_layer"] = (
            filter_grid(first, views.image_shape, by_norm(first, views.first_layer), zoom=1)
            if board
            else filter_figure(first, views.image_shape, views.first_layer, caption)
        )
    if boundary and plane is not None:
        out["boundary"] = boundary_figure(model, views.head, plane, views.prepare, views.labels, caption or "")
    return out


def write_pictures(pictures: Mapping[str, Picture], folder: Path) -> list[Path]:
    """Each picture as ``<folder>/<tag with / → _>.png``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for tag, fig in pictures.items():
        path = folder / f"{tag.replace('/', '_')}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


class Inside(Timed, Hook):
    """The hook of the module's docstring. ``batch``: the prepared validation inputs the health is measured on
    (None: no health); ``views``: the pictures (None: none); ``warn``: prints a warning (and logs it); ``notes``:
    the run's warning list, which the warnings are added to (metrics.json keeps it)."""

    def __init__(self, writer: Any, model: MLP, *, views: Views | None, batch: torch.Tensor | None,
                 images_every: int, log_every: int, warn_share: float, warn: Callable[[str], None],
                 notes: list[str]) -> None:  # fmt: skip
        self.writer, self.model, self.views, self.batch = writer, model, views, batch
        self.images_every, self.log_every, self.warn_share = images_every, log_every, warn_share
        self.warn, self.notes = warn, notes
        self.activation = model.spec["activation"]
        self.activation = self.activation if isinstance(self.activation, str) else self.activation["name"]
        self.hidden = list(model.spec["hidden"])
        self.pending: list[tuple[int, torch.Tensor]] = []  # (step, per-layer gradient norms on the device)
        self.epochs_seen: list[int] = []
        self.health: list[list[list[float | None]]] = []  # epoch → layer → HEALTH
        self.grads: list[list[float]] = []  # epoch → dense layer → mean gradient norm of its measurements
        self.warned: set[tuple[int, str]] = set()
        self.steps_per_epoch, self.epochs, self.seconds = 1, 1, 0.0

    def on_fit_start(self, *, epochs: int, steps_per_epoch: int) -> None:
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch

    def on_step(self, step: int) -> None:
        if self.batch is not None and (step % self.log_every == 0 or step % self.steps_per_epoch == 0):
            with self.timed():
                self.pending.append((step, grad_norms(self.model)))  # stays on the device until the epoch's end

    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None:
        epoch = int(row["epoch"])
        with self.timed():
            if self.batch is not None:
                self.measure(epoch)
            if (
                self.views is not None
                and self.images_every > 0
                and (epoch % self.images_every == 0 or epoch == self.epochs)
            ):
                for tag, fig in render(self.model, self.views, f"epoch {epoch}", board=True).items():
                    image = fig if isinstance(fig, np.ndarray) else pixels(fig)
                    self.writer.add_image(tag, image, epoch, dataformats="HWC")

    def measure(self, epoch: int) -> None:
        """This epoch's health (the host reads it once, with the gradient norms kept since the last epoch)."""
        values, _ = layer_values(self.model, self.batch)  # type: ignore[arg-type]
        health = layer_health(values, self.activation)  # L×3
        steps = [s for s, _ in self.pending]
        kept = torch.stack([g for _, g in self.pending]) if self.pending else health.new_zeros(0, 0)  # S×(L+1)
        self.pending = []
        both = torch.cat([health.flatten(), kept.to(health.device).flatten()]).tolist()  # the one host read
        cut = health.numel()
        rows = [[None if math.isnan(v) else v for v in both[i : i + len(HEALTH)]] for i in range(0, cut, len(HEALTH))]
        width = kept.shape[1] if kept.numel() else 1
        grads = [both[cut + s * width : cut + (s + 1) * width] for s in range(len(steps))]
        self.epochs_seen.append(epoch)
        self.health.append(rows)
        self.grads.append([float(np.mean(col)) for col in zip(*grads)] if grads else [])
        for i, layer in enumerate(rows):
            for name, value in zip(HEALTH, layer):
                if value is not None:
                    self.writer.add_scalar(f"health/{name}/layer{i}", value, epoch)
            self.check(i, layer, epoch)
        for step, norms in zip(steps, grads):
            for i, norm in enumerate(norms):
                self.writer.add_scalar(f"health/grad_norm/layer{i}", norm, step)

    def check(self, i: int, layer: Sequence[float | None], epoch: int) -> None:
        """Warn (once per layer and measure) when more than ``warn_share`` of hidden layer ``i`` is dead or
        saturated."""
        dead, saturated, _ = layer
        units, n = self.hidden[i], len(self.batch)  # type: ignore[arg-type]
        if dead is not None and dead > self.warn_share and (i, "dead") not in self.warned:
            self.warned.add((i, "dead"))
            self.say(f"{dead:.0%} of layer {i}'s {units} {self.activation} units are dead at epoch {epoch}: their z is "
                     f"never positive on the {n} samples of the health batch, so no gradient reaches their weights "
                     f"and they stay dead. Try a lower optimizer.lr, model.activation=leaky_relu, or model.norm=batch.")  # fmt: skip
        if saturated is not None and saturated > self.warn_share and (i, "saturated") not in self.warned:
            self.warned.add((i, "saturated"))
            self.say(f"{saturated:.0%} of layer {i}'s {units} {self.activation} units are saturated at epoch {epoch}: "
                     f"their |z| > {SATURATION_Z[self.activation]:g} for all {n} samples of the health batch, where "
                     f"the slope is under 3 % of its peak, so almost no gradient reaches their weights. Try "
                     f"model.norm=batch, model.activation=relu, standardized inputs, or a lower optimizer.lr.")  # fmt: skip

    def say(self, note: str) -> None:
        self.notes.append(note)
        self.warn(note)

    def record(self) -> dict[str, Any] | None:
        """metrics.json's ``health``: per hidden layer its measures by epoch, per dense layer its mean gradient norm
        by epoch (the head last), and the thresholds."""
        if self.batch is None:
            return None
        layers: list[dict[str, Any]] = []
        for i, units in enumerate([*self.hidden, None]):
            entry: dict[str, Any] = {"layer": i, "units": units, "activation": self.activation}
            if units is None:
                entry.update(units=self.model.spec["out_features"], activation="output")
            else:
                for k, name in enumerate(HEALTH):
                    series = [epoch_rows[i][k] for epoch_rows in self.health]
                    if any(v is not None for v in series):
                        entry[name] = series
            entry["grad_norm"] = [g[i] if g else None for g in self.grads]
            layers.append(entry)
        return {
            "epochs": self.epochs_seen, "batch": len(self.batch), "warn_share": self.warn_share,
            "dead_family": list(DEAD_FAMILY), "saturation_z": SATURATION_Z, "layers": layers,
        }  # fmt: skip

    def finish(self, folder: Path, caption: str) -> list[Path]:
        """The pictures of the weights the model holds now (the run's best), as PNGs in ``folder``."""
        if self.views is None:
            return []
        with self.timed():
            return write_pictures(render(self.model, self.views, caption, boundary=True), folder)


def health_table(record: Mapping[str, Any] | None) -> list[Any]:
    """The result panel's layer table from metrics.json's ``health``: per dense layer its width and activation, the
    last epoch's dead / saturated share and mean activation, and its gradient norm in the first and last epoch."""
    if not record or not record["layers"] or not record["epochs"]:
        return []  # trainer.epochs=0: nothing was measured
    from rich.table import Table
    from rich.text import Text

    def last(entry: Mapping[str, Any], key: str, fmt: str) -> str:
        series = [v for v in entry.get(key) or [] if v is not None]
        return fmt.format(series[-1]) if series else "–"

    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("layer", "units", "", "dead", "saturated", "mean act", "grad norm, epoch 1 → last"):
        table.add_column(header, justify="left" if header in ("layer", "") else "right")
    for entry in record["layers"]:
        norms = [g for g in entry["grad_norm"] if g is not None]
        table.add_row(
            "output" if entry["activation"] == "output" else str(entry["layer"]), f"{entry['units']:,}",
            "" if entry["activation"] == "output" else entry["activation"], last(entry, "dead", "{:.0%}"),
            last(entry, "saturated", "{:.0%}"), last(entry, "mean_activation", "{:.3g}"),
            f"{norms[0]:.1e} → {norms[-1]:.1e}" if norms else "–",
        )  # fmt: skip
    return [Text(f"layers (health on {record['batch']} validation samples)", style="bold"), table]
