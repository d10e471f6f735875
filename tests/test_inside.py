"""Inside the network: unit maps, the diagram, the first layer's weights, layer health — against hand calculations
and pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from annkit.dashboard import BLUE, ORANGE, PLAYGROUND, pixels
from annkit.data import Batcher, Plane
from annkit.diagram import diagram_columns, diagram_figure, filter_grid
from annkit.head import Head
from annkit.inside import Inside
from annkit.models import MLP
from annkit.probes import by_norm, grad_norms, layer_health, layer_values, strongest
from annkit.unit_maps import LUT, activation_centre, plane_layers, unit_tiles
from tests.fitting import fit_with

BINARY = Head("classification", ("negative", "positive"), "bce", "sigmoid")


def identity(x: torch.Tensor, train: bool) -> torch.Tensor:
    return x


def lut_index(image: np.ndarray) -> np.ndarray:
    """Each pixel's entry in the playground colour map (the pixels are exactly its entries)."""
    flat = image.reshape(-1, 3).astype(np.int64)
    codes = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    table = {(int(r) << 16) | (int(g) << 8) | int(b): i for i, (r, g, b) in enumerate(LUT)}
    return np.array([table[c] for c in codes]).reshape(image.shape[:2])


def hand_set(model: MLP, *weights: tuple[list[list[float]], list[float]]) -> MLP:
    with torch.no_grad():
        for block, (w, b) in zip(model.dense_layers(), weights):
            block[0].weight.copy_(torch.tensor(w))
            block[0].bias.copy_(torch.tensor(b))
    return model


def test_unit_maps_flip_colour_exactly_on_each_hidden_units_line():
    """A 2-2-1 tanh network: unit 0 is z = x1 − 1 (the line x1 = 1), unit 1 is z = x1 − x2 + 0.5 (x2 = x1 + 0.5).
    Every grid point on the positive side of a unit's line is a blue-side colour, every one on the negative side an
    orange-side colour; the output's map is P = σ(…) on the fixed 0…1 scale."""
    model = hand_set(MLP(2, [2], 1, "tanh"), ([[1.0, 0.0], [1.0, -1.0]], [-1.0, 0.5]), ([[2.0, -3.0]], [0.25]))
    plane = Plane(lambda g: g.astype(np.float32), {}, (-3.0, 3.0, -3.0, 3.0))
    r = 37
    layers = plane_layers(model, BINARY, plane, identity, ["x1", "x2"], resolution=r)
    assert [layer.name for layer in layers] == ["input", "layer 0", "output"]
    xs = np.linspace(-3, 3, r)
    gx, gy = np.meshgrid(xs, xs)  # row = x2 (bottom up), column = x1
    for unit, z in enumerate((gx - 1.0, gx - gy + 0.5)):
        tile = unit_tiles(layers[1])[unit]
        index = np.flipud(lut_index(tile))  # back to row = x2 bottom up
        off_line = np.abs(z) > 1e-9
        assert np.all((index >= 128)[off_line] == (z > 0)[off_line]), unit
        assert (z > 0).any() and (z < 0).any()
    # the inputs: x1 itself, centred on 0, scaled on its own (full orange at x1 = −3, full blue at x1 = 3)
    x1 = np.flipud(lut_index(unit_tiles(layers[0])[0]))
    assert (x1[:, 0] == 0).all() and (x1[:, -1] == 255).all()
    # the output: P(positive) on the fixed scale, entry ⌊256·P⌋
    h = np.tanh(np.stack([gx - 1.0, gx - gy + 0.5]))
    p = 1 / (1 + np.exp(-(2.0 * h[0] - 3.0 * h[1] + 0.25)))
    out = np.flipud(lut_index(unit_tiles(layers[2])[0]))
    assert np.abs(out - np.minimum(np.floor(256 * p), 255)).max() <= 1  # float32 vs float64 at an entry's edge


def test_the_colour_midpoint_is_where_the_activation_crosses_its_middle():
    assert activation_centre("tanh") == 0.0 and activation_centre("sigmoid") == 0.5
    assert activation_centre("relu") == 0.0 and activation_centre("step") == 0.5 and activation_centre("sign") == 0.0
    assert activation_centre("softplus") == pytest.approx(np.log(2))


def test_a_wide_layer_shows_the_units_with_the_largest_outgoing_weights_in_unit_order():
    w = torch.tensor([[0.1, 5.0, 0.0, -3.0, 0.2], [0.0, 0.0, 4.0, 0.0, 0.0]])  # next layer reads units 1, 2, 3 most
    assert strongest(w, 3) == [1, 2, 3] and strongest(w, 9) == [0, 1, 2, 3, 4]
    assert by_norm(torch.tensor([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0]]), 2) == [1, 2]  # largest ‖w_j‖ first


def colour_pixels(image: np.ndarray, colour: str) -> int:
    """Pixels of the colour's hue: blue ones (B − R > 60) or orange ones (R − B > 60); anti-aliased edges count."""
    r, b = image[..., 0].astype(int), image[..., 2].astype(int)
    return int(((b - r > 60) if colour == BLUE else (r - b > 60)).sum())


def test_the_diagram_draws_a_large_positive_weight_thick_and_blue_a_small_negative_one_thin_and_orange():
    model = hand_set(MLP(2, [], 1), ([[3.0, -0.3]], [0.0]))
    columns = diagram_columns(model, ["x1", "x2"], ["P(positive)"], 16)
    image = pixels(diagram_figure(model, columns))
    blue, orange = colour_pixels(image, BLUE), colour_pixels(image, ORANGE)
    assert orange > 0 and blue > 3 * orange  # one edge each, of equal length: the width makes the difference
    flipped = hand_set(MLP(2, [], 1), ([[-3.0, 0.3]], [0.0]))
    image = pixels(diagram_figure(flipped, diagram_columns(flipped, ["x1", "x2"], ["P"], 16)))
    assert colour_pixels(image, ORANGE) > 3 * colour_pixels(image, BLUE) > 0


def test_the_diagram_of_a_wide_layer_keeps_its_strongest_units_and_says_so():
    torch.manual_seed(0)
    model = MLP(784, [300], 10)
    columns = diagram_columns(model, [f"px {i}" for i in range(784)], [str(i) for i in range(10)], 16)
    assert [len(c.units) for c in columns] == [16, 16, 10] and columns[2].units == list(range(10))
    fig = diagram_figure(model, columns)
    text = " ".join(t.get_text() for t in fig.texts)
    assert "inputs: 16 of 784 units" in text and "layer 0: 16 of 300 units" in text and "64 strongest" in text


def test_the_first_layers_weight_grid_is_the_weights_under_the_colour_map():
    torch.manual_seed(1)
    weight = torch.randn(5, 28 * 28)
    units = by_norm(weight, 3)
    grid = filter_grid(weight, (28, 28), units, columns=8, zoom=2, gap=2)
    assert grid.shape == (56, 3 * 56 + 2 * 2, 3)
    for k, j in enumerate(units):
        w = weight[j].reshape(28, 28).double().numpy()
        t = 0.5 + 0.5 * w / np.abs(w).max()  # each unit on its own scale: its largest |w| is full colour
        expected = (PLAYGROUND(np.minimum((t * 256).astype(int), 255))[..., :3] * 255).round().astype(np.uint8)
        tile = grid[:, k * 58 : k * 58 + 56][::2, ::2]  # zoom 2: every second pixel is the weight's own
        assert np.array_equal(tile, expected)


def test_a_layer_with_very_negative_biases_is_all_dead():
    model = MLP(4, [6, 3], 2, "relu")
    with torch.no_grad():
        model.dense_layers()[0][0].bias.fill_(-100.0)
    values, _ = layer_values(model, torch.rand(64, 4))
    health = layer_health(values, "relu")
    assert health[0, 0].item() == 1.0 and health[0, 2].item() == 0.0  # every unit dead, outputs 0
    assert torch.isnan(health[:, 1]).all()  # saturation is for sigmoid and tanh


def test_a_tanh_layer_fed_large_inputs_reports_its_saturated_share_exactly():
    """z = x·W1ᵀ + b1 with W1 = I (4 units, 4 inputs), b1 = 0: a unit is saturated when |z| > 2.5 for every input.
    Unit 0 always is (3, −4, 9), unit 3 too (10, −2.6, 2.51); unit 1 is not (one 2.4), unit 2 is not (one 0)."""
    x = torch.tensor([[3.0, 2.4, 0.0, 10.0], [-4.0, 9.0, 5.0, -2.6], [9.0, -7.0, -3.0, 2.51]])
    eye = torch.eye(4).tolist()
    model = hand_set(MLP(4, [4], 1, "tanh"), (eye, [0.0] * 4), ([[1.0] * 4], [0.0]))
    health = layer_health(layer_values(model, x)[0], "tanh")
    assert health[0, 1].item() == 0.5  # 2 of 4 units
    assert health[0, 2].item() == pytest.approx(float(torch.tanh(x).mean()))
    sig = hand_set(MLP(4, [4], 1, "sigmoid"), (eye, [0.0] * 4), ([[1.0] * 4], [0.0]))
    assert layer_health(layer_values(sig, 2 * x)[0], "sigmoid")[0, 1].item() == 0.5  # |z| > 5: the same units
    assert layer_health(layer_values(sig, x)[0], "sigmoid")[0, 1].item() == 0.0  # no unit has |z| > 5 throughout


def test_gradient_norms_are_the_norms_of_the_grads_read_back():
    torch.manual_seed(0)
    model = MLP(5, [4, 3], 2, "tanh")
    nn.functional.cross_entropy(model(torch.randn(8, 5)), torch.randint(0, 2, (8,))).backward()
    expected = [torch.linalg.vector_norm(torch.cat([b[0].weight.grad.flatten(), b[0].bias.grad.flatten()]))
                for b in model.dense_layers()]  # fmt: skip
    torch.testing.assert_close(grad_norms(model), torch.stack(expected))


class Scalars:
    """A SummaryWriter stand-in that keeps the scalars."""

    def __init__(self) -> None:
        self.points: dict[str, list[tuple[int, float]]] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.points.setdefault(tag, []).append((step, value))


def test_the_hook_logs_health_every_epoch_and_gradient_norms_at_the_log_cadence_and_warns_once():
    """7 steps an epoch, log_every 3: norms at the loop's log points, steps 3, 6, 9, 12, and at each epoch's last
    step, 7 and 14; the last equals the norm
    of the grads the loop left. Dead units (biases set very negative, so they stay dead) warn once."""
    torch.manual_seed(0)
    x, y = torch.randn(70, 3), torch.randint(0, 2, (70,))
    model = MLP(3, [5], 2, "relu")
    with torch.no_grad():
        model.dense_layers()[0][0].bias.fill_(-50.0)
    writer, said, notes = Scalars(), [], []
    inside = Inside(writer, model, views=None, batch=x[:20], images_every=0, log_every=3, warn_share=0.5,
                    warn=said.append, notes=notes)  # fmt: skip
    head = Head("classification", "ab", "ce", "softmax")
    fit_with(model, torch.optim.SGD(model.parameters(), lr=0.1), Batcher(x, y, 10, shuffle=True,
             generator=torch.Generator().manual_seed(0)), Batcher(x, y, 35), head=head, prepare=identity, epochs=2,
             log_every=3, hooks=[inside])  # fmt: skip
    assert [s for s, _ in writer.points["health/grad_norm/layer1"]] == [3, 6, 7, 9, 12, 14]
    last = [v for _, v in (writer.points["health/grad_norm/layer0"][-1], writer.points["health/grad_norm/layer1"][-1])]
    assert last == pytest.approx(grad_norms(model).tolist(), rel=1e-6)
    assert writer.points["health/dead/layer0"] == [(1, 1.0), (2, 1.0)]
    assert len(said) == 1 and "100% of layer 0's 5 relu units are dead at epoch 1" in said[0] and notes == said
    record = inside.record()
    assert record["epochs"] == [1, 2] and record["layers"][0]["dead"] == [1.0, 1.0]
    assert "saturated" not in record["layers"][0] and len(record["layers"][1]["grad_norm"]) == 2
