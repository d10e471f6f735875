"""TensorBoard as a product surface: the tag scheme, custom-scalars layout, hparams, pictures and
histograms, read back from real runs with tensorboard's own EventAccumulator."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from annkit.checkpoint import load_checkpoint
from annkit.dashboard import BLUE, ORANGE, ConfusionPlot, boundary_figure, epoch_tag, hparam_values, pixels
from annkit.data import Plane, table_plane
from annkit.data.tabular import load_playground
from annkit.head import Head
from annkit.models import MLP
from tests.conftest import make_idx_dataset, run_annkit

ROOT = Path(__file__).resolve().parents[1]


def events(tb: Path) -> EventAccumulator:
    return EventAccumulator(str(tb), size_guidance={"scalars": 0, "tensors": 0, "images": 0, "histograms": 0}).Reload()


def png(event) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))


def plugin(acc: EventAccumulator, tag: str) -> plugin_data_pb2.HParamsPluginData:
    return plugin_data_pb2.HParamsPluginData.FromString(acc.PluginTagToContent("hparams")[tag])


def value(v) -> object:
    kind = v.WhichOneof("kind")
    return {"string_value": v.string_value, "number_value": v.number_value, "bool_value": v.bool_value}[kind]


@pytest.fixture(scope="module")
def spiral(tmp_path_factory):
    """A playground run: 7 epochs, pictures every 3 (3, 6 and the last, 7), histograms every 2."""
    cwd = tmp_path_factory.mktemp("spiral")
    proc = run_annkit(
        "train",
        "experiment=spiral_activations",
        "model.activation=tanh",
        "trainer.epochs=7",
        "dataset.n=200",
        "logger.images_every=3",
        "logger.histograms=true",
        "logger.histograms_every=2",
        "hydra.run.dir=run",
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = cwd / "run"
    return run, json.loads((run / "metrics.json").read_text()), events(run / "tb")


def test_epoch_scalars_follow_the_tag_scheme_with_the_history_values(spiral):
    _, m, acc = spiral
    scalars = set(acc.Tags()["scalars"])
    assert {
        "loss/train",
        "loss/val",
        "acc/train",
        "acc/val",
        "balanced_accuracy/val",
        "recall/val/negative",
        "recall/val/positive",
        "lr",
        "time/epoch_s",
        "time/train_s",
        "throughput/samples_per_s",
        "step/loss_train",
        "step/acc_train",
        "step/lr",
    } <= scalars
    assert not any(t.startswith(("train/", "val/")) for t in scalars)  # the old split-first names are gone
    for key in (
        "train/loss",
        "val/loss",
        "train/accuracy",
        "val/accuracy",
        "val/recall/positive",
        "lr",
        "samples_per_s",
    ):
        points = acc.Scalars(epoch_tag(key))
        assert [p.step for p in points] == list(range(1, 8))
        assert [p.value for p in points] == pytest.approx([row[key] for row in m["history"]], rel=1e-6)
    # per log interval: 100 training points / batch 10 = 10 steps per epoch, log_every=25
    assert [p.step for p in acc.Scalars("step/loss_train")] == [10, 20, 25, 30, 40, 50, 60, 70]


def test_custom_scalars_layout_puts_train_and_val_on_one_chart(spiral):
    _, _, acc = spiral
    layout = layout_pb2.Layout.FromString(acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag) for category in layout.category for chart in category.chart}
    scalars = acc.Tags()["scalars"]
    loss = [t for t in scalars if any(re.search(r, t) for r in charts["loss (train, val)"])]
    acc_tags = [t for t in scalars if any(re.search(r, t) for r in charts["accuracy (train, val)"])]
    assert sorted(loss) == ["loss/train", "loss/val"] and sorted(acc_tags) == ["acc/train", "acc/val"]
    recall = [t for t in scalars if any(re.search(r, t) for r in charts["recall (val)"])]
    assert sorted(recall) == ["recall/val/negative", "recall/val/positive"]


def test_hparams_hold_the_key_config_and_the_real_final_metrics(spiral):
    _, m, acc = spiral
    start = plugin(acc, "_hparams_/session_start_info").session_start_info
    hp = {k: value(v) for k, v in start.hparams.items()}
    assert hp["model.activation"] == "tanh" and hp["experiment"] == "spiral_activations"
    assert hp["model.hidden"] == "[8, 8]" and hp["optimizer"] == "Adam" and hp["scheduler"] == "none"
    assert hp["optimizer.lr"] == pytest.approx(0.01) and hp["trainer.epochs"] == 7 and hp["dataset.n"] == 200
    assert "trainer.log_every" not in hp  # not the whole flattened config: the table stays readable
    experiment = plugin(acc, "_hparams_/experiment").experiment
    differs = {info.name for info in experiment.hparam_infos if info.differs}
    assert differs == {
        "experiment",
        "model.activation",
        "trainer.epochs",
        "dataset.n",
        "logger.images_every",
        "logger.histograms",
        "logger.histograms_every",
    }  # what the command line set: shown first
    metrics = {info.name.tag for info in experiment.metric_infos}
    assert {
        "final/test_accuracy",
        "final/val_accuracy",
        "final/test_loss",
        "final/val_loss",
        "final/best_epoch",
    } <= metrics
    for tag, expected in (
        ("final/test_accuracy", m["test"]["accuracy"]),
        ("final/val_loss", m["val"]["loss"]),
        ("final/best_epoch", m["best_epoch"]),
    ):
        (point,) = acc.Scalars(tag)
        assert point.step == 7 and point.value == pytest.approx(expected, rel=1e-6)
    end = plugin(acc, "_hparams_/session_end_info").session_end_info
    assert end.status == api_pb2.STATUS_SUCCESS


def test_pictures_at_each_evaluation_and_every_n_epochs(spiral):
    _, _m, acc = spiral
    images = acc.Tags()["images"]
    assert [e.step for e in acc.Images("confusion/val")] == [3, 6, 7]  # at the image cadence too
    assert [e.step for e in acc.Images("confusion/test")] == [7]
    assert [e.step for e in acc.Images("boundary")] == [3, 6, 7]  # every 3 epochs and the last
    assert "misclassified/val" not in images  # points, not images
    boundary = png(acc.Images("boundary")[-1])
    assert boundary.shape[2] == 3 and min(boundary.shape[:2]) > 200
    # the points in the playground's two class colours
    flat = boundary.reshape(-1, 3).astype(int)
    for colour in (ORANGE, BLUE):
        target = np.array(to_rgb(colour)) * 255
        assert (np.abs(flat - target).sum(axis=1) < 60).mean() > 0.002, colour


def test_histograms_of_weights_biases_gradients_and_activations(spiral):
    run, _, acc = spiral
    tags = set(acc.Tags()["histograms"])
    for i in range(3):  # 2 → 8 → 8 → 1: dense layers 0, 1 and the head 2
        assert {
            f"weights/layer{i}",
            f"biases/layer{i}",
            f"grads/layer{i}.weight",
            f"grads/layer{i}.bias",
            f"activations/layer{i}",
        } <= tags
    assert [e.step for e in acc.Histograms("weights/layer2")] == [2, 4, 6, 7]
    # epoch 7 is the last: the histogram describes exactly the weights of checkpoints/last
    weights = load_checkpoint(run / "checkpoints" / "last.safetensors", torch.device("cpu")).model["layers.5.weight"]
    hist = acc.Histograms("weights/layer2")[-1].histogram_value
    assert hist.num == weights.numel() and hist.min == pytest.approx(weights.min().item())
    assert hist.max == pytest.approx(weights.max().item()) and hist.sum == pytest.approx(weights.sum().item(), rel=1e-5)
    tanh = acc.Histograms("activations/layer0")[-1].histogram_value
    assert tanh.min >= -1 and tanh.max <= 1 and tanh.num == 8 * 20  # 20 validation points × 8 tanh units


def test_model_summary_and_config_as_text(spiral):
    _, m, acc = spiral
    text = acc.Tensors("model/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| 0 | Flatten |" in text and "| 1 | Linear | 8 | 24 |" in text and "Tanh" in text
    assert f"**{m['params']:,}**" in text
    config = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "activation: tanh" in config
    assert 0 < m["logging_s"] < m["wall_s"]


def test_histograms_are_opt_in_and_images_can_be_turned_off(tmp_path):
    proc = run_annkit(
        "train",
        "experiment=spiral_activations",
        "trainer.epochs=2",
        "dataset.n=100",
        "logger.images_every=0",
        "logger.confusion=false",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tags = events(tmp_path / "run" / "tb").Tags()
    assert tags["histograms"] == [] and tags["images"] == []
    assert "loss/val" in tags["scalars"]


def test_image_dataset_gets_a_misclassified_grid(tmp_path):
    data = make_idx_dataset(tmp_path / "data", n_train=400, n_test=100)
    proc = run_annkit(
        "train",
        f"dataset.root={data}",
        "dataset.verify=false",
        "dataset.val_size=100",
        "model.hidden=[16]",
        "trainer.epochs=2",
        "optimizer.lr=1e-4",
        "scheduler=none",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )  # a low lr: still some mistakes
    assert proc.returncode == 0, proc.stdout + proc.stderr
    acc = events(tmp_path / "run" / "tb")
    assert [e.step for e in acc.Images("misclassified/val")] == [1, 2]
    assert [e.step for e in acc.Images("confusion/val")] == [1, 2]
    assert "boundary" not in acc.Tags()["images"]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["val"]["accuracy"] < 1  # there was something to show


def test_confusion_picture_colours_each_cell_by_its_row_share():
    names = ["a", "b", "c"]
    plot = ConfusionPlot(names)
    first = plot.render([[10, 0, 0], [5, 5, 0], [0, 0, 0]], "one")
    second = plot.render([[0, 0, 10], [0, 10, 0], [10, 0, 0]], "two")  # the same plot, redrawn
    cmap = plot.im.cmap
    h = first.shape[0]

    def at(image, i, j):  # pixel colour a quarter cell off the centre of (row i, column j), clear of the number
        x, y = plot.ax.transData.transform((j + 0.3, i + 0.3))
        return image[int(h - y), int(x)] / 255

    for image, shares in ((first, [[1, 0, 0], [0.5, 0.5, 0], [0, 0, 0]]), (second, [[0, 0, 1], [0, 1, 0], [1, 0, 0]])):
        for i in range(3):
            for j in range(3):
                assert at(image, i, j) == pytest.approx(np.array(cmap(float(shares[i][j]))[:3]), abs=0.02), (i, j)


def test_boundary_background_is_the_models_probability():
    """A logistic neuron with P(positive) = σ(10·x1): orange left of x1 = 0, blue right of it."""
    model = MLP(2, [], 1)
    with torch.no_grad():
        model.layers[1].weight.copy_(torch.tensor([[10.0, 0.0]]))
        model.layers[1].bias.zero_()
    head = Head("classification", ["negative", "positive"], "bce", "sigmoid")
    plane = Plane(lambda g: g.astype(np.float32), {"train": np.zeros((0, 2))}, (-6.0, 6.0, -6.0, 6.0))
    fig = boundary_figure(model, head, plane, lambda x, _train: x, {"train": np.zeros(0)}, "t", resolution=60)
    image = pixels(fig)
    ax = fig.axes[0]
    h = image.shape[0]
    for point, colour in (((-4.0, 2.0), ORANGE), ((4.0, -2.0), BLUE)):
        x, y = ax.transData.transform(point)
        assert image[int(h - y), int(x)] / 255 == pytest.approx(np.array(to_rgb(colour)), abs=0.03)


def test_playground_plane_maps_points_to_the_model_inputs():
    data = load_playground(
        "playground",
        kind="circle",
        task="classification",
        n=120,
        noise=0.1,
        train_ratio=0.5,
        val_size=0.2,
        features=["x1", "x2", "x1_sq", "sin_x2"],
        standardize=True,
        class_fraction=None,
        label_noise={"fraction": 0.0, "error_rate": 0.5, "weight": 1.0},
        seed=3,
        device=torch.device("cpu"),
    )
    assert data.plane is not None
    for split in ("train", "val", "test"):
        x = getattr(data, split).x.numpy()
        assert data.plane.inputs(data.plane.points[split]) == pytest.approx(x, abs=1e-5)


def test_hparams_pick_the_overridden_keys_and_group_choices():
    flat = {
        "model.activation": "relu",
        "model.hidden": "[8]",
        "optimizer._target_": "torch.optim.SGD",
        "optimizer.lr": 0.1,
        "scheduler._target_": None,
        "trainer.seed": 0,
        "dataset.name": "xor",
        "dataset.noise": 0.2,
    }
    hp, varying = hparam_values(
        flat, ["dataset=xor", "dataset.noise=0.2", "+trainer.seed=0", "hydra.run.dir=x", "experiment=a"]
    )
    assert varying == {"dataset", "dataset.noise", "trainer.seed", "experiment"}
    assert hp == {
        "dataset": "xor",
        "dataset.name": "xor",
        "dataset.noise": 0.2,
        "experiment": "a",
        "model.activation": "relu",
        "model.hidden": "[8]",
        "optimizer": "SGD",
        "optimizer.lr": 0.1,
        "scheduler": "none",
        "trainer.seed": 0,
    }


def test_the_docs_tag_table_covers_every_tag_a_run_writes(spiral):
    """Each scalar, image, histogram and text tag of a run matches a row of the table in docs/tensorboard.md."""
    _, _, acc = spiral
    page = (ROOT / "docs" / "tensorboard.md").read_text()
    section = page.split("\n## TensorBoard tags", 1)[1].split("\n## ", 1)[0]
    patterns = [
        re.escape(p)
        .replace(re.escape("<class>"), "[^/]+")
        .replace(re.escape("<i>"), r"\d+")
        .replace(re.escape("<metric>"), "[a-z0-9_]+")
        .replace(re.escape("<param>"), "(weight|bias)")
        for p in re.findall(r"^\| `([^`]+)`", section, re.M)
    ]
    assert len(patterns) >= 15
    tags = acc.Tags()
    written = [
        *tags["scalars"],
        *tags["images"],
        *tags["histograms"],
        *(t.removesuffix("/text_summary") for t in tags["tensors"] if t.endswith("/text_summary")),
    ]
    missing = [t for t in written if not any(re.fullmatch(p, t) for p in patterns)]
    assert not missing, f"tags not in the table of docs/tensorboard.md: {missing}"


def test_a_two_column_table_gets_its_boundary_over_its_own_columns(tmp_path):
    """XOR (two input columns, no generator plane): the picture spans the data with a margin."""
    proc = run_annkit(
        "train", "experiment=xor_tanh", "trainer.epochs=4", "logger.images_every=2", "hydra.run.dir=run", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    acc = events(tmp_path / "run" / "tb")
    assert [e.step for e in acc.Images("boundary")] == [2, 4]
    plane = table_plane(
        {"train": torch.tensor([[0.0, 0.0], [1.0, 1.0]]), "test": torch.tensor([[0.0, 1.0]])}, ("a", "b")
    )
    assert plane.extent == pytest.approx((-0.5, 1.5, -0.5, 1.5))  # 10 % of the span, at least 0.5
    assert plane.inputs(np.array([[0.25, 0.75]])).tolist() == [[0.25, 0.75]] and plane.axes == ("a", "b")
