"""Config → what a training run draws and measures: the dashboard (confusion matrices, decision boundary,
misclassified images, histograms) and the view inside the network (layer health, unit maps, the diagram, the first
layer's weights), both as loop hooks writing to TensorBoard, and the PNGs at the end of the run.

The task layer: this module reads ``logger.*``; :mod:`annkit.dashboard` and :mod:`annkit.inside` take plain
arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from annkit.dashboard import Dashboard
from annkit.data import Data, Plane, plane_of
from annkit.head import Head
from annkit.inside import Inside, Views
from annkit.loop import Hook
from annkit.tasks.build import Built
from annkit.tracking import TensorBoardLogger
from annkit.truth import truth_rows

PICTURES = "pictures"  # the run dir's folder of PNGs


@dataclass
class Pictures:
    """The two picture hooks of a run (rank 0 only), and for a logic gate the inputs of its truth table."""

    dashboard: Dashboard
    inside: Inside
    truth: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def seconds(self) -> float:
        """What the pictures and the health measurements cost (metrics.json's ``logging_s`` adds it)."""
        return self.dashboard.seconds + self.inside.seconds

    def finish(self, run_dir: Path, caption: str) -> dict[str, Any]:
        """The end-of-run PNGs (the model holds the best weights) and the health record, for metrics.json."""
        written = self.inside.finish(run_dir / PICTURES, caption)
        out = {"health": self.inside.record(), "pictures": [str(p.relative_to(run_dir)) for p in written]}
        if self.truth is not None:
            out["truth_table"] = truth_rows(self.inside.model, self.dashboard.head, *self.truth)
        return out


def images_every(cfg: dict[str, Any]) -> int:
    every, epochs = cfg["logger"]["images_every"], cfg["trainer"]["epochs"]
    return every if every != "auto" else max(1, math.ceil(epochs / 5))


def feature_names(data: Data) -> list[str]:
    """The inputs' names: a table's features, or "px r,c" for each pixel of an image."""
    if data.preprocessing.get("kind") == "image":
        h, w = data.input_shape[-2:]
        return [f"px {r},{c}" for r in range(h) for c in range(w)]
    return [str(f) for f in data.preprocessing.get("features") or [f"x{j + 1}" for j in range(data.input_shape[0])]]


def views(logger: dict[str, Any], data: Data, head: Head, plane: Plane | None) -> Views:
    """What :mod:`annkit.inside` draws, from ``logger.*``."""
    image = data.preprocessing.get("kind") == "image" and len(data.input_shape) >= 2
    points = None
    if plane is not None and "train" in plane.points:
        points = (plane.points["train"], data.train.y.cpu().numpy())
    return Views(
        head, data.prepare, feature_names(data), plane, image_shape=tuple(data.input_shape[-2:]) if image else None,
        points=points, labels={s: getattr(data, s).y.cpu().numpy() for s in ("train", "val", "test")},
        max_units=logger["max_units"], resolution=logger["unit_resolution"], unit_maps=logger["unit_maps"],
        diagram=logger["diagram"], first_layer=logger["first_layer"],
    )  # fmt: skip


def make_pictures(cfg: dict[str, Any], built: Built, tensorboard: TensorBoardLogger, warn: Callable[[str], None],
                  notes: list[str]) -> Pictures:  # fmt: skip
    """The dashboard and the inside view of ``logger.*``; ``warn`` prints a health warning, ``notes`` keeps it."""
    logger, data, head = cfg["logger"], built.problem.data, built.problem.head
    plane, every, model = plane_of(data), images_every(cfg), built.network.model
    labels = {split: getattr(data, split).y.cpu().numpy() for split in ("train", "val", "test")} if plane else None
    dashboard = Dashboard(
        tensorboard.writer, model, head, names=data.names, prepare=data.prepare,
        val=(data.val.x, data.val.y), plane=plane, labels=labels, images=len(data.input_shape) >= 2,
        images_every=every, confusion=logger["confusion"], histograms_every=logger["histograms_every"] if logger["histograms"] else 0,
        misclassified=logger["misclassified"], resolution=logger["boundary_resolution"], epochs=cfg["trainer"]["epochs"],
    )  # fmt: skip
    drawn = logger["unit_maps"] or logger["diagram"] or logger["first_layer"]
    batch = (
        data.prepare(data.val.x[: logger["health_batch"]], False) if logger["health"] and model.spec["hidden"] else None
    )
    inside = Inside(
        tensorboard.writer, model, views=views(logger, data, head, plane) if drawn else None, batch=batch,
        images_every=every, log_every=cfg["trainer"]["log_every"], warn_share=logger["health_warn"], warn=warn,
        notes=notes,
    )  # fmt: skip
    truth = (data.val.x, data.val.y) if cfg["dataset"]["name"] in ("logic", "xor") else None  # the 4 exact pairs
    return Pictures(dashboard, inside, truth)


def picture_hooks(pictures: Pictures | None) -> tuple[list[Hook], list[Hook]]:
    """(before the console's row, after it): the dashboard draws first; the health warnings follow the row."""
    return ([pictures.dashboard], [pictures.inside]) if pictures is not None else ([], [])
