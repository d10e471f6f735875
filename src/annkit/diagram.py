"""The network as a picture, and what its first layer looks for.

:func:`diagram_figure` draws the whole network as TF Playground does: a column of nodes per layer (the input
features, each hidden layer, the outputs), each node its unit map over the plane for 2-D data or a plain disc
otherwise; an edge per weight, its width ∝ |w| (on one scale for the whole picture) and its colour the weight's sign
(blue w > 0, orange w < 0); a small square at each node's lower left for its bias (same colours, size ∝ |b|).

A layer of at most :data:`FULL` units is drawn whole, with every edge. A larger layer shows its ``max_units`` units
with the largest outgoing weights (:func:`annkit.probes.strongest`), and the edges into or out of it are the
:data:`EDGES_PER_UNIT` · ``max_units`` strongest between the nodes shown; the picture says so under it.

:func:`filter_grid`: the first layer's weight rows of an image model as images (28×28 for Fashion-MNIST), the units
ordered by ‖w_j‖₂, largest first (:func:`annkit.probes.by_norm`); each on its own scale (its largest |w| is full
colour), orange w < 0, grey 0, blue w > 0 — the playground colour map of :mod:`annkit.unit_maps`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.collections import LineCollection

from annkit.dashboard import BLUE, ORANGE
from annkit.figures import Picture, picture
from annkit.models import MLP
from annkit.probes import by_norm, strongest
from annkit.unit_maps import UnitLayer, colours, montage, shades, unit_tiles

FULL = 64  # a layer this wide or narrower is drawn whole
EDGES_PER_UNIT = 4  # a reduced layer pair keeps this many edges per node shown
NODE, PITCH_X, PITCH_Y = 24, 92, 30  # node size and spacing, in canvas pixels


@dataclass
class Column:
    """One layer of the diagram: its title, its width, the units drawn (indices), their labels, and their tiles
    (unit maps, R×R×3) or None for discs."""

    title: str
    size: int
    units: list[int]
    labels: list[str]
    tiles: list[np.ndarray] | None = None


def shown_units(outgoing: torch.Tensor, max_units: int) -> list[int]:
    """The units of a layer the diagram draws: all of a layer of at most :data:`FULL`, else the strongest
    ``max_units``."""
    return strongest(outgoing, outgoing.shape[1] if outgoing.shape[1] <= FULL else max_units)


def diagram_columns(model: MLP, features: Sequence[str], outputs: Sequence[str], max_units: int,
                    maps: Sequence[UnitLayer] | None = None) -> list[Column]:  # fmt: skip
    """The columns of :func:`diagram_figure`: inputs, hidden layers, outputs. ``maps`` (2-D data): every layer's
    unit maps, computed for the units :func:`shown_units` picks (their tiles become the nodes)."""
    weights = [block[0].weight for block in model.dense_layers()]
    spec = model.spec
    sizes = [spec["in_features"], *spec["hidden"], spec["out_features"]]
    activation = spec["activation"] if isinstance(spec["activation"], str) else spec["activation"]["name"]
    columns = []
    for i, size in enumerate(sizes):
        units = shown_units(weights[i], max_units) if i < len(weights) else list(range(min(size, FULL)))
        if i == 0:
            title, labels = f"inputs\n{size} features", [str(features[j]) for j in units]
        elif i == len(sizes) - 1:
            title, labels = f"output\n{size} unit{'s' * (size > 1)}", [str(outputs[j]) for j in units]
        else:
            title, labels = f"layer {i - 1}\n{size} {activation}", [str(j) for j in units]
        tiles = None
        if maps is not None:
            layer = maps[i]
            tiles = unit_tiles(layer) if layer.units == units else None
        columns.append(Column(title, size, units, labels, tiles))
    return columns


def _edges(model: MLP, columns: Sequence[Column]) -> tuple[list[tuple[int, int, int, float]], list[str]]:
    """(layer, from node, to node, w) of every edge drawn, and the notes on what was left out."""
    edges, notes = [], []
    for column in columns:
        if column.size > len(column.units):
            name = column.title.splitlines()[0]
            notes.append(f"{name}: {len(column.units)} of {column.size:,} units (the largest outgoing weights)")
    blocks = model.dense_layers()
    for i, block in enumerate(blocks):
        w = block[0].weight.detach().float().cpu().numpy()
        src, dst = columns[i], columns[i + 1]
        sub = w[np.ix_(dst.units, src.units)]  # to × from
        pairs = [(i, a, b, float(sub[b, a])) for b in range(len(dst.units)) for a in range(len(src.units))]
        reduced = src.size > len(src.units) or dst.size > len(dst.units)
        keep = EDGES_PER_UNIT * max(len(src.units), len(dst.units))
        if reduced and len(pairs) > keep:
            pairs = sorted(pairs, key=lambda e: -abs(e[3]))[:keep]
            into = "the output" if i == len(blocks) - 1 else f"layer {i}"
            notes.append(f"weights into {into}: the {keep} strongest of the {len(sub):,}×{sub.shape[1]} between the "
                         f"units shown ({w.size:,} in all)")  # fmt: skip
        edges += pairs
    return edges, notes


def _positions(columns: Sequence[Column]) -> tuple[list[np.ndarray], int, int]:
    """Each column's node centres (n×2, canvas pixels), and the canvas size (W, H)."""
    tallest = max(len(c.units) for c in columns)
    height = tallest * PITCH_Y + 70
    width = (len(columns) - 1) * PITCH_X + NODE + 150
    centres = []
    for i, column in enumerate(columns):
        n = len(column.units)
        x = 75 + NODE / 2 + i * PITCH_X
        ys = 50 + (tallest - n) * PITCH_Y / 2 + PITCH_Y / 2 + np.arange(n) * PITCH_Y
        centres.append(np.stack([np.full(n, x), ys], axis=1))
    return centres, width, height


def diagram_figure(model: MLP, columns: Sequence[Column], caption: str = "", dpi: int = 90,
                   names: bool = True) -> Picture:  # fmt: skip
    """The network diagram of the module's docstring. ``dpi`` and ``names`` (the nodes' names): TensorBoard's copy
    during training is smaller and leaves the names out (each text costs a draw of ~2 ms)."""
    centres, width, height = _positions(columns)
    edges, notes = _edges(model, columns)
    canvas = np.zeros((height, width, 4), dtype=np.uint8)  # the unit-map nodes, transparent elsewhere
    zoom = min(1.6, 900 / max(width, height))
    inches = height * zoom / 90 + 0.3 + 0.14 * len(notes)  # the canvas, and the notes below it
    fig = picture((width * zoom / 90, inches), dpi=dpi)
    bottom = (0.3 + 0.14 * len(notes)) / inches
    ax = fig.add_axes((0, bottom, 1, 1 - bottom))
    biggest = max((abs(e[3]) for e in edges), default=0.0) or 1.0
    half = NODE / 2
    segments = [((centres[i][a][0] + half, centres[i][a][1]), (centres[i + 1][b][0] - half, centres[i + 1][b][1]))
                for i, a, b, _ in edges]  # fmt: skip
    ax.add_collection(LineCollection(
        segments, linewidths=[0.5 + 3.5 * abs(w) / biggest for *_, w in edges],
        colors=[BLUE if w > 0 else ORANGE for *_, w in edges], alpha=0.85, zorder=1, capstyle="butt",
    ))  # fmt: skip
    discs = []
    for column, xy in zip(columns, centres):
        for j, (x, y) in enumerate(xy):
            if column.tiles is not None:
                top, left = round(y - half), round(x - half)
                tile = _resize(column.tiles[j], NODE)
                canvas[top : top + NODE, left : left + NODE, :3] = tile
                canvas[top : top + NODE, left : left + NODE, 3] = 255
            else:
                discs.append((x, y))
    ax.imshow(canvas, extent=(0, width, height, 0), interpolation="nearest", zorder=3)
    if discs:
        ax.scatter(*zip(*discs), s=(NODE * zoom * 0.62) ** 2, c="#d9dcdd", edgecolors="#555555", linewidths=0.6,
                   zorder=3)  # fmt: skip
    _biases(ax, model, columns, centres, zoom)
    _labels(ax, columns, centres, names)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.set_axis_off()
    text = f"edge width ∝ |w| (largest {biggest:.3g}) · blue w > 0, orange w < 0 · square: the unit's bias"
    fig.text(0.01, 0.01, "\n".join([*notes, text + (f" · {caption}" if caption else "")]), fontsize=6.5, va="bottom")
    return fig


def _resize(tile: np.ndarray, side: int) -> np.ndarray:
    """A square tile resampled to side×side pixels (nearest)."""
    idx = (np.arange(side) * tile.shape[0] / side).astype(int)
    return tile[np.ix_(idx, idx)]


def _biases(ax: object, model: MLP, columns: Sequence[Column], centres: Sequence[np.ndarray], zoom: float) -> None:
    """A square at each non-input node's lower left: colour the bias's sign, area ∝ |b| (the largest: full size)."""
    xs, ys, sizes, cols = [], [], [], []
    blocks = model.dense_layers()
    values = [blocks[i][0].bias for i in range(len(blocks))]
    biggest = max((float(b.detach().abs().max()) for b in values if b is not None and b.numel()), default=0.0)
    if biggest == 0:
        return
    for column, xy, bias in zip(columns[1:], centres[1:], values):
        if bias is None:
            continue
        b = bias.detach().float().cpu().numpy()[column.units]
        for (x, y), v in zip(xy, b):
            if v != 0:
                xs.append(x - NODE / 2)
                ys.append(y + NODE / 2)
                sizes.append((7 * zoom * math.sqrt(abs(v) / biggest)) ** 2)
                cols.append(BLUE if v > 0 else ORANGE)
    ax.scatter(xs, ys, s=sizes, c=cols, marker="s", edgecolors="white", linewidths=0.4, zorder=4)  # type: ignore[attr-defined]


def _labels(ax: object, columns: Sequence[Column], centres: Sequence[np.ndarray], names: bool) -> None:
    """Column titles on top; the input features' names on the left, the outputs' on the right; unit numbers of a
    reduced hidden layer beside its nodes."""
    for i, (column, xy) in enumerate(zip(columns, centres)):
        ax.text(xy[0][0], 6, column.title, ha="center", va="top", fontsize=7)  # type: ignore[attr-defined]
        last = i == len(columns) - 1
        named = i == 0 or last or column.size > len(column.units)
        if not names or not named or len(column.units) > 32:
            continue
        for (x, y), label in zip(xy, column.labels):
            dx = NODE / 2 + 3
            ax.text(x + dx if last else x - dx, y, label[:14], ha="left" if last else "right", va="center",  # type: ignore[attr-defined]
                    fontsize=6)  # fmt: skip


def filter_grid(weight: torch.Tensor, shape: tuple[int, int], units: Sequence[int], *, columns: int = 8,
                zoom: int = 3, gap: int = 2) -> np.ndarray:  # fmt: skip
    """The first layer's weight rows ``units`` (of ``weight``, units×H·W) as H×W images, each on its own scale,
    enlarged ``zoom`` times (nearest), in a grid: an uint8 RGB image."""
    w = weight.detach().float().cpu().numpy()
    tiles = []
    for j in units:
        tile = colours(shades(w[j].reshape(shape), 0.0, None))
        tiles.append(np.repeat(np.repeat(tile, zoom, axis=0), zoom, axis=1))
    return montage(tiles, min(columns, len(tiles)), gap=gap)


def filter_figure(weight: torch.Tensor, shape: tuple[int, int], n: int, caption: str = "") -> Picture:
    """:func:`filter_grid` of the ``n`` units with the largest ‖w_j‖ (largest first), titled."""
    units = by_norm(weight, n)
    grid = filter_grid(weight, shape, units)
    h, w = grid.shape[:2]
    fig = picture((max(3.0, w / 60), h / 60 + 0.4), dpi=90)
    ax = fig.add_axes((0.01, 0.01, 0.98, 1 - 0.4 / (h / 60 + 0.4)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    total = weight.shape[0]
    fig.suptitle(f"first layer: {len(units)} of {total} units by ‖w‖ (largest first) · orange w < 0, blue w > 0, "
                 f"each on its own scale{' · ' + caption if caption else ''}", fontsize=7, y=0.995, va="top")  # fmt: skip
    return fig
