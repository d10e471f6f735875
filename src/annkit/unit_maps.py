"""Every unit's map over the plane (2-D data): what TF Playground draws in each neuron, one picture per layer.

For a 2-D dataset (the playground, xor, logic, any two-column table) each layer's units are functions of the point
(x1, x2): the input features (x1, x2, x1², sin x1, … as the model reads them), every hidden unit's output g(z), and
the output (P(class), or the value for regression). :func:`plane_layers` evaluates all of them on an R×R grid over
the plane in one forward pass; :func:`unit_tiles` colours each map; :func:`unit_map_figure` lays a layer's maps out
as one picture.

**Colours** (TF Playground's): orange below the unit's midpoint, blue above it, the neutral grey on it. The
midpoint of a hidden unit is the middle of its activation's range when that is bounded (sigmoid 0.5, tanh 0,
step 0.5, sign 0), else g(0) (relu, leaky_relu, elu, … 0; softplus ln 2): so for every monotone activation the
colour flips exactly on the unit's own line z = w·a + b = 0. Each map is scaled on its own (the largest distance
from the midpoint on the grid is full colour); inputs are centred on 0; probabilities are drawn on the fixed scale
0 (orange) … 0.5 … 1 (blue), as the boundary picture draws them. A unit that is constant over the plane is all
grey and labelled "constant".

**Wide layers**: a picture shows at most ``max_units`` units of a layer: the ones with the largest outgoing weight
norm (:func:`annkit.probes.strongest`), in unit order, each labelled with its index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from annkit.dashboard import BLUE, ORANGE, PLAYGROUND
from annkit.data import Plane
from annkit.figures import Picture, picture
from annkit.head import Head
from annkit.models import MLP, make_activation
from annkit.probes import layer_values, strongest

LUT = (PLAYGROUND(np.arange(PLAYGROUND.N))[:, :3] * 255).round().astype(np.uint8)  # the 256 colours, as uint8 RGB


@dataclass
class UnitLayer:
    """One layer's maps: ``values`` n×R×R (row r is x2's r-th grid value, bottom up; column c x1's), a label per
    map, the midpoint, and ``scale``: None to scale each map on its own, or the fixed half-range of every map."""

    name: str  # "input", "layer 0", "output"
    title: str  # "layer 0 · tanh · 8 units"
    labels: list[str]
    values: np.ndarray
    centre: float
    scale: float | None = None
    units: list[int] | None = None  # the unit index of each map (None: all, in order)


def activation_centre(spec: object) -> float:
    """The colour midpoint of a hidden unit with activation ``spec``: the middle of g's range when it is bounded,
    else g(0) (see the module's docstring)."""
    g = make_activation(spec)  # type: ignore[arg-type]
    with torch.no_grad():
        lo, zero, hi = (float(v) for v in g(torch.tensor([-1e4, 0.0, 1e4], dtype=torch.float64)))
    bounded = all(math.isfinite(v) and abs(v) < 1e3 for v in (lo, hi))
    return (lo + hi) / 2 if bounded else zero


def shades(values: np.ndarray, centre: float, scale: float | None) -> np.ndarray:
    """Each value's place on the colour map, t ∈ [0, 1]: 0.5 + 0.5·(v − centre)/s, s = ``scale`` or the largest
    |v − centre| of the map (a constant map: 0.5 everywhere)."""
    d = np.asarray(values, dtype=np.float64) - centre
    s = scale if scale is not None else float(np.abs(d).max(initial=0.0))
    if s <= 0 or not math.isfinite(s):
        return np.full(d.shape, 0.5)
    return np.clip(0.5 + 0.5 * d / s, 0.0, 1.0)


def colours(t: np.ndarray) -> np.ndarray:
    """Shades → uint8 RGB through the playground colour map's 256 entries (entry ⌊256·t⌋: t < 0.5 is an orange-side
    entry, t ≥ 0.5 a blue-side one)."""
    index = np.minimum((np.asarray(t) * len(LUT)).astype(np.int64), len(LUT) - 1)
    return LUT[index]


def unit_tiles(layer: UnitLayer) -> list[np.ndarray]:
    """Each map of ``layer`` as an R×R×3 uint8 image, the right way up (row 0 at the top: x2 largest)."""
    return [np.flipud(colours(shades(v, layer.centre, layer.scale))) for v in layer.values]


def montage(tiles: Sequence[np.ndarray], columns: int, gap: int = 3, top: int = 0) -> np.ndarray:
    """Equal tiles in a grid, ``gap`` white pixels apart and ``top`` white pixels above each (for its label): an
    H×W×3 uint8 image. Tile i's top left corner is at row r·(h + top + gap) + top, column c·(w + gap)."""
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    out = np.full((rows * (h + top + gap) - gap, columns * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = r * (h + top + gap) + top, c * (w + gap)
        out[y : y + h, x : x + w] = tile
    return out


def plane_grid(plane: Plane, resolution: int) -> np.ndarray:
    """R²×2 points (x1, x2) of the plane, x1 fastest: point r·R + c is (x1_c, x2_r)."""
    x0, x1, y0, y1 = plane.extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


Pick = Callable[[torch.Tensor], list[int]]  # a layer's outgoing weight (out×units) → the units a picture shows


@torch.no_grad()
def plane_layers(model: MLP, head: Head, plane: Plane, prepare: Callable[[torch.Tensor, bool], torch.Tensor],
                 features: Sequence[str], *, resolution: int = 40, pick: Pick | None = None) -> list[UnitLayer]:  # fmt: skip
    """The maps of every layer over ``plane``: the input features, each hidden layer, the output (one forward pass
    over the R×R grid). ``pick``: which units of a layer to keep (default: the 16 with the largest outgoing
    weights); the outputs are the first of theirs it would keep, in order."""
    r, pick = resolution, pick or (lambda w: strongest(w, 16))
    device = next(model.parameters()).device
    inputs = torch.as_tensor(plane.inputs(plane_grid(plane, r)), device=device)
    hidden, logits = layer_values(model, prepare(inputs, False))
    weights = [block[0].weight for block in model.dense_layers()]

    def maps(a: np.ndarray, units: list[int]) -> np.ndarray:
        return a[:, units].T.reshape(len(units), r, r)

    feats = inputs.float().cpu().numpy()
    shown = pick(weights[0])
    layers = [UnitLayer("input", f"inputs · {feats.shape[1]} features", [str(features[j]) for j in shown],
                        maps(feats, shown), 0.0, units=shown)]  # fmt: skip
    spec = model.spec["activation"]
    centre, name = activation_centre(spec), str(spec if isinstance(spec, str) else spec["name"])
    for i, values in enumerate(hidden):
        post = values.post.float().cpu().numpy()
        shown = pick(weights[i + 1])
        more = f" (the {len(shown)} with the largest outgoing weights)" if len(shown) < post.shape[1] else ""
        layers.append(UnitLayer(f"layer {i}", f"layer {i} · {name} · {post.shape[1]} units{more}",
                                [f"unit {j}" for j in shown], maps(post, shown), centre, units=shown))  # fmt: skip
    out = head.activate(logits).float().cpu().numpy()
    layers.append(output_layer(head, out, r, pick(torch.ones(1, out.shape[1]))))
    return layers


def output_layer(head: Head, out: np.ndarray, resolution: int, units: list[int]) -> UnitLayer:
    """The output's maps (``units`` of them): P(class) per class on the fixed 0…1 scale (one map, P(positive class),
    for a single sigmoid output), or each target's value (regression), scaled on its own."""
    values = out[:, units].T.reshape(len(units), resolution, resolution)
    if head.task == "regression":
        return UnitLayer("output", "output · value", [str(head.names[j]) for j in units], values, 0.0, units=units)
    labels = [f"P({head.names[-1]})"] if head.single_output else [f"P({head.names[j]})" for j in units]
    what = "P(class)" if head.task == "classification" else "P(label)"
    return UnitLayer("output", f"output · {what}", labels, values, 0.5, scale=0.5, units=units)


def unit_map_figure(layer: UnitLayer, plane: Plane, title: str = "",
                    points: tuple[np.ndarray, np.ndarray] | None = None, columns: int = 8,
                    zoom: int | None = None) -> Picture:  # fmt: skip
    """One layer's maps as one picture: the tiles (enlarged ``zoom`` times, no smoothing) in a grid, each labelled
    above ("constant" when it is), the layer's title, and optionally the data points (N×2 coordinates, N class
    indices or values) over every map. The pixels are placed as they are (``figimage``: no axes, no resampling);
    ``zoom`` defaults to 4 for one or two maps, 3 for up to four, else 2."""
    zoom = zoom or (4 if len(layer.values) <= 2 else 3 if len(layer.values) <= 4 else 2)
    tiles = [np.repeat(np.repeat(t, zoom, axis=0), zoom, axis=1) for t in unit_tiles(layer)]
    n = len(tiles)
    columns = min(columns, n)
    side, gap, top, head = tiles[0].shape[0], 4, 13, 18  # tile, gap, label strip, title strip (pixels)
    if points is not None:
        tiles = [_dots(t, points, plane) for t in tiles]
    image = montage(tiles, columns, gap, top)
    h, w = image.shape[:2]
    width = max(w, 240)
    fig = picture((width / 90, (h + head) / 90), dpi=90)
    fig.figimage(image, xo=0, yo=0, origin="upper")
    constant = [float(np.ptp(v)) == 0.0 for v in layer.values]
    for i, label in enumerate(layer.labels):
        r, c = divmod(i, columns)
        y = head + r * (side + top + gap) + top - 2  # pixels from the top
        fig.text(c * (side + gap) / width, 1 - y / (h + head), label + (" · constant" if constant[i] else ""),
                 fontsize=6.5, va="bottom", ha="left")  # fmt: skip
    fig.text(0.5, 1 - 3 / (h + head), f"{layer.title}{' · ' + title if title else ''}", fontsize=8, ha="center",
             va="top")  # fmt: skip
    return fig


def _dots(tile: np.ndarray, points: tuple[np.ndarray, np.ndarray], plane: Plane) -> np.ndarray:
    """``tile`` with the data points drawn in: 3×3 pixels in the class colour (orange 0, blue 1, or a value > 0.5),
    ringed in white."""
    xy, labels = points
    side = tile.shape[0]
    x0, x1, y0, y1 = plane.extent
    col = np.round((xy[:, 0] - x0) / (x1 - x0) * (side - 1)).astype(int)
    row = np.round((y1 - xy[:, 1]) / (y1 - y0) * (side - 1)).astype(int)
    blue = np.asarray(labels).reshape(len(col), -1)[:, -1] > 0.5
    out = tile.copy()
    for radius, colour in ((2, None), (1, "class")):
        for dr in range(-radius, radius + 1):
            for dc in range(-radius, radius + 1):
                r, c = row + dr, col + dc
                ok = (r >= 0) & (r < side) & (c >= 0) & (c < side)
                if colour is None:
                    out[r[ok], c[ok]] = 255
                else:
                    out[r[ok], c[ok]] = np.where(blue[ok, None], RGB[BLUE], RGB[ORANGE])
    return out


RGB = {c: np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8) for c in (BLUE, ORANGE)}
