"""`annkit eval` and `annkit predict` as a user runs them: on a model trained by the real CLI on the real
Fashion-MNIST files, on tables (playground features, a CSV with string classes), and every bad input."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from annkit.checkpoint import load_model
from annkit.data.idx import load_idx
from annkit.data.playground import make_features
from annkit.data.preprocess import normalize
from tests.conftest import assert_user_error, run_annkit

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # where device=auto runs the subprocesses
N_IMAGES = 30


def train(cwd: Path, run_dir: Path, *overrides: str) -> dict:
    proc = run_annkit("train", *overrides, f"hydra.run.dir={run_dir}", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((run_dir / "metrics.json").read_text())


def read_predictions(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(run_dir / "predictions.csv", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def reference(ckpt: Path, x: torch.Tensor) -> torch.Tensor:
    """The model's softmax in-process, as a user would compute it: load_model, then the stored preprocessing."""
    model, _ = load_model(ckpt, DEVICE)
    with torch.no_grad():
        return torch.softmax(model(x.to(DEVICE)).float(), dim=1).cpu()


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, fashion_dir):
    """One small real model: 784 → 64 → 10, two epochs on 5,000 real Fashion-MNIST images."""
    cwd = tmp_path_factory.mktemp("fashion")
    run_dir = cwd / "run"
    m = train(
        cwd, run_dir, "model.hidden=[64]", "trainer.epochs=2", "dataset.limit_train=5000", f"dataset.root={fashion_dir}"
    )
    return run_dir / "checkpoints" / "best.safetensors", m


@pytest.fixture(scope="module")
def test_images(fashion_run, fashion_dir, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The first 30 real test images, decoded from the IDX file and saved as PNG files."""
    folder = tmp_path_factory.mktemp("pngs") / "images"
    folder.mkdir()
    images = load_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")[:N_IMAGES]
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"test_{i:03d}.png")
    return folder, images


def test_eval_reproduces_the_runs_test_metrics(fashion_run, tmp_path):
    ckpt, m = fashion_run
    proc = run_annkit("eval", f"checkpoint={ckpt}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    e = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert e["split"] == "test" and e["n"] == 10000 and e["checkpoint"] == str(ckpt.resolve())
    assert e["checkpoint_epoch"] == m["best_epoch"] and e["dataset"] == "fashion_mnist" and e["wall_s"] > 0
    assert e["test"]["accuracy"] == m["test"]["accuracy"] and e["test"]["loss"] == m["test"]["loss"]
    assert e["test"]["confusion_matrix"] == m["test"]["confusion_matrix"]
    assert e["test"] == m["test"]  # the whole report: same split, same weights, same preprocessing
    flat = " ".join(proc.stdout.split())
    assert "test confusion matrix" in flat and "9 Ankle boot 1,000" in flat
    assert f"{m['test']['accuracy']:.2%}" in flat


def test_eval_on_the_val_split_reproduces_the_best_epochs_val_metrics(fashion_run, tmp_path):
    ckpt, m = fashion_run
    proc = run_annkit("eval", f"checkpoint={ckpt}", "split=val", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    e = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert e["split"] == "val" and e["n"] == 5000
    assert e["val"] == m["val"]  # the best epoch's validation report
    assert e["val"]["accuracy"] == m["history"][m["best_epoch"] - 1]["val/accuracy"]


def test_predict_a_folder_of_real_test_images(fashion_run, test_images, tmp_path):
    ckpt, _ = fashion_run
    folder, images = test_images
    proc = run_annkit(
        "predict", f"checkpoint={ckpt}", f"input={folder}", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header, rows = read_predictions(tmp_path / "p")
    _, loaded = load_model(ckpt)
    classes, stats = loaded.meta["data"]["classes"], loaded.meta["data"]["preprocessing"]
    assert header == ["input", "predicted", "confidence", *(f"p_{c}" for c in classes)]
    assert [r["input"] for r in rows] == [f"test_{i:03d}.png" for i in range(N_IMAGES)]  # sorted by name
    # reference: the IDX pixels themselves (so the PNG round trip is checked too), the stored mean/std, argmax
    probs = reference(ckpt, normalize(torch.from_numpy(images), stats["mean"], stats["std"]))
    got = torch.tensor([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    assert [r["predicted"] for r in rows] == [classes[i] for i in probs.argmax(1).tolist()]
    assert torch.allclose(got, probs, atol=1e-6, rtol=0)
    assert torch.allclose(got.sum(1), torch.ones(N_IMAGES), atol=1e-6)
    assert [float(r["confidence"]) for r in rows] == [float(r[f"p_{r['predicted']}"]) for r in rows]
    flat = " ".join(proc.stdout.split())
    assert "the first 10 of 30 predictions" in flat and "test_009.png" in flat and "test_010.png" not in flat


def test_predict_one_image_and_colour_becomes_grey(fashion_run, test_images, tmp_path):
    ckpt, _ = fashion_run
    folder, images = test_images
    rgb = tmp_path / "shirt.png"
    Image.fromarray(np.repeat(images[3][:, :, None], 3, axis=2)).convert("RGB").save(rgb)  # grey as RGB: same luma
    for source, name in ((folder / "test_003.png", "grey"), (rgb, "rgb")):
        proc = run_annkit(
            "predict", f"checkpoint={ckpt}", f"input={source}", f"hydra.run.dir={tmp_path / name}", cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    (grey_row,), (rgb_row,) = read_predictions(tmp_path / "grey")[1], read_predictions(tmp_path / "rgb")[1]
    assert grey_row["input"] == "test_003.png" and rgb_row["input"] == "shirt.png"
    assert {k: v for k, v in grey_row.items() if k != "input"} == {k: v for k, v in rgb_row.items() if k != "input"}
    assert "1 image converted to 8-bit grey: RGB" in " ".join(proc.stdout.split())


@pytest.fixture(scope="module")
def playground_run(tmp_path_factory) -> Path:
    """A playground circle model on derived, standardised features (x1, x2, x1², x2²)."""
    cwd = tmp_path_factory.mktemp("playground")
    train(
        cwd,
        cwd / "run",
        "dataset=playground",
        "dataset.kind=circle",
        "dataset.features=[x1,x2,x1_sq,x2_sq]",
        "dataset.standardize=true",
        "model.hidden=[8]",
        "trainer.epochs=15",
        "trainer.batch_size=32",
        "optimizer.lr=0.02",
    )
    return cwd / "run"


def test_predict_from_a_csv_of_playground_points(playground_run, tmp_path):
    """The CSV gives x1, x2 (in another order, and an ignored label column); the features and the
    stored standardisation come from the checkpoint. eval reproduces the run's test report."""
    run_dir = playground_run
    ckpt = run_dir / "checkpoints" / "best.safetensors"
    points = np.random.default_rng(1).uniform(-5, 5, size=(25, 2)).round(3)
    table = tmp_path / "points.csv"
    table.write_text("label,x2,x1\n" + "".join(f"?,{b},{a}\n" for a, b in points))  # other order, extra column
    proc = run_annkit(
        "predict", f"checkpoint={ckpt}", f"input={table}", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header, rows = read_predictions(tmp_path / "p")
    assert header == ["input", "predicted", "confidence", "p_negative", "p_positive"]
    assert [r["input"] for r in rows] == [str(i) for i in range(1, 26)]
    _, loaded = load_model(ckpt)
    pre = loaded.meta["data"]["preprocessing"]
    x = (make_features(points, ["x1", "x2", "x1_sq", "x2_sq"]) - np.array(pre["mean"])) / np.array(pre["std"])
    probs = reference(ckpt, torch.from_numpy(x.astype(np.float32)))
    assert [r["predicted"] for r in rows] == [["negative", "positive"][i] for i in probs.argmax(1).tolist()]
    got = torch.tensor([[float(r["p_negative"]), float(r["p_positive"])] for r in rows])
    assert torch.allclose(got, probs, atol=1e-6, rtol=0)
    inside = np.hypot(points[:, 0], points[:, 1]) < 2.5  # the circle's positives: the model learnt them
    assert np.mean([r["predicted"] == ("positive" if c else "negative") for r, c in zip(rows, inside)]) > 0.8
    e = run_annkit("eval", f"checkpoint={ckpt}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert e.returncode == 0, e.stdout + e.stderr
    assert (
        json.loads((tmp_path / "e" / "metrics.json").read_text())["test"]
        == json.loads((run_dir / "metrics.json").read_text())["test"]
    )


def test_csv_with_string_classes_and_one_sigmoid_output(tmp_path):
    """dataset=csv with classes "cat"/"dog" and loss=bce (one sigmoid output p): predictions.csv gives
    p_cat = 1 − p and p_dog = p; eval reproduces the run's test report on its own split."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2)) * [1.0, 10.0] + [5.0, 50.0]
    kind = np.where(x[:, 0] - 5 + (x[:, 1] - 50) / 10 > 0, "dog", "cat")
    data = tmp_path / "pets.csv"
    data.write_text("weight,height,kind\n" + "".join(f"{a:.4f},{b:.4f},{k}\n" for (a, b), k in zip(x, kind)))
    run_dir = tmp_path / "run"
    m = train(
        tmp_path,
        run_dir,
        "dataset=csv",
        f"dataset.path={data}",
        "dataset.target=kind",
        "loss=bce",
        "model.hidden=[4]",
        "trainer.epochs=10",
        "trainer.batch_size=32",
        "optimizer.lr=0.02",
    )
    ckpt = run_dir / "checkpoints" / "best.safetensors"
    new = tmp_path / "new.csv"
    rows_in = [(5.5, 48.0), (3.0, 40.0), (7.0, 65.0), (5.0, 50.0)]
    new.write_text("height,weight\n" + "".join(f"{b},{a}\n" for a, b in rows_in))
    proc = run_annkit("predict", f"checkpoint={ckpt}", f"input={new}", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header, rows = read_predictions(tmp_path / "p")
    assert header == ["input", "predicted", "confidence", "p_cat", "p_dog"]
    model, loaded = load_model(ckpt, DEVICE)
    pre = loaded.meta["data"]["preprocessing"]
    assert pre["features"] == ["weight", "height"] and pre["standardize"]
    z = (np.array(rows_in, dtype=np.float32) - np.array(pre["mean"])) / np.array(pre["std"])
    with torch.no_grad():
        p = torch.sigmoid(model(torch.from_numpy(z.astype(np.float32)).to(DEVICE))).cpu()[:, 0]
    assert torch.allclose(torch.tensor([float(r["p_dog"]) for r in rows]), p, atol=1e-6, rtol=0)
    assert torch.allclose(torch.tensor([float(r["p_cat"]) for r in rows]), 1 - p, atol=1e-6, rtol=0)
    assert [r["predicted"] for r in rows] == ["dog" if v > 0.5 else "cat" for v in p.tolist()]
    assert [r["predicted"] for r in rows][1:3] == ["cat", "dog"]  # far from the boundary: learnt
    e = run_annkit("eval", f"checkpoint={ckpt}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert e.returncode == 0, e.stdout + e.stderr
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["test"] == m["test"]


# ── bad inputs: one paragraph, exit 2, no traceback, nothing lost ────────────────────────────────


class Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))  # what unpickling would run


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_pickle_is_never_unpickled(tmp_path, precious, command, test_images):
    planted = tmp_path / "pwned"
    weights = tmp_path / "model.pt"
    weights.write_bytes(pickle.dumps(Payload(planted)))
    proc = (
        run_annkit(command, f"checkpoint={weights}", f"input={test_images[0]}", cwd=tmp_path)
        if command == "predict"
        else run_annkit(command, f"checkpoint={weights}", cwd=tmp_path)
    )
    assert proc.returncode == 2
    assert_user_error(
        proc, "error: model.pt is not an annkit checkpoint", "it never unpickles files"
    )  # shown relative to the cwd
    assert not planted.exists()


def test_missing_checkpoint_and_missing_keys(tmp_path, precious):
    assert_user_error(
        run_annkit("eval", "checkpoint=runs/none.safetensors", cwd=tmp_path),
        "No checkpoint at runs/none.safetensors",
        "`ls outputs/train/runs` lists the runs",
    )
    assert_user_error(run_annkit("eval", cwd=tmp_path), "annkit eval needs checkpoint=<path>")
    proc = run_annkit("predict", "checkpoint=c.safetensors", cwd=tmp_path)
    assert proc.returncode == 2
    assert_user_error(proc, "annkit predict needs input=<path>", "a .csv file", "a folder of such images")


def test_truncated_checkpoint(fashion_run, tmp_path, precious, test_images):
    ckpt, _ = fashion_run
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(ckpt.read_bytes()[:20_000])
    proc = run_annkit("predict", f"checkpoint={cut}", f"input={test_images[0]}", cwd=tmp_path)
    assert proc.returncode == 2
    assert_user_error(proc, "error: cut.safetensors is not an annkit checkpoint", "20,000 bytes", "truncated")


def test_image_of_the_wrong_size(fashion_run, tmp_path, precious):
    ckpt, _ = fashion_run
    Image.new("RGB", (32, 30)).save(tmp_path / "big.png")
    proc = run_annkit("predict", f"checkpoint={ckpt}", "input=big.png", cwd=tmp_path)
    assert proc.returncode == 2
    assert_user_error(proc, "big.png is 32×30 pixels (width×height, mode RGB)", "takes 28×28 images", "does not resize")
    assert not list((tmp_path / "outputs" / "predict" / "runs").glob("*/predictions.csv"))


def test_wrong_file_type_and_corrupt_image(fashion_run, tmp_path, precious, test_images):
    ckpt, _ = fashion_run
    (tmp_path / "weights.npy").write_bytes(b"\x93NUMPY")
    assert_user_error(
        run_annkit("predict", f"checkpoint={ckpt}", "input=weights.npy", cwd=tmp_path),
        "files of type '.npy' are not supported for this checkpoint, which takes images",
        ".png, .jpg",
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes((test_images[0] / "test_000.png").read_bytes()[:100])
    assert_user_error(
        run_annkit("predict", f"checkpoint={ckpt}", f"input={broken}", cwd=tmp_path),
        f"{broken / 'a.png'} cannot be read as an image",
        "truncated",
    )
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    assert_user_error(
        run_annkit("predict", f"checkpoint={ckpt}", "input=rows.csv", cwd=tmp_path),
        "input=rows.csv is a table, but this checkpoint was trained on 28×28 images",
    )


def test_folder_without_images(fashion_run, tmp_path, precious):
    ckpt, _ = fashion_run
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("hi")
    proc = run_annkit("predict", f"checkpoint={ckpt}", f"input={folder}", cwd=tmp_path)
    assert proc.returncode == 2
    assert_user_error(proc, f"The folder {folder} has no image files", "It holds: notes.txt", ".png, .jpg")


def test_csv_missing_a_feature_column_or_holding_text(playground_run, tmp_path, precious):
    ckpt = playground_run / "checkpoints" / "best.safetensors"
    (tmp_path / "half.csv").write_text("x1,y\n0,1\n")
    proc = run_annkit("predict", f"checkpoint={ckpt}", "input=half.csv", cwd=tmp_path)
    assert proc.returncode == 2
    assert_user_error(
        proc, "half.csv lacks the column x2", "Its header has: x1, y", "The model takes the columns x1, x2"
    )
    (tmp_path / "text.csv").write_text("x1,x2\n0,1\n1,one\n\n1,\n")
    assert_user_error(
        run_annkit("predict", f"checkpoint={ckpt}", "input=text.csv", cwd=tmp_path),
        'line 3, column x2: "one"; line 5, column x2: empty',
    )


@pytest.mark.parametrize(("rows", "got"), [("0,1\n0.5\n2,3\n", "1 field"), ("0,1\n1,2,3\n2,3\n", "3 fields")])
def test_csv_with_a_short_or_long_row_is_refused_as_training_refuses_it(playground_run, tmp_path, precious, rows, got):
    """Predict reads rows as training does: a row with more or fewer fields than the header is refused, naming
    the file, the line and both counts, instead of being padded with empty cells or silently cut to the header."""
    ckpt = playground_run / "checkpoints" / "best.safetensors"
    (tmp_path / "ragged.csv").write_text("x1,x2\n" + rows)
    proc = run_annkit(
        "predict", f"checkpoint={ckpt}", "input=ragged.csv", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert_user_error(
        proc,
        "Line 3 of",
        f"ragged.csv has {got} but the header (line 1) has 2 columns (x1, x2). Every row needs one field per column.",
    )
    assert not (tmp_path / "p" / "predictions.csv").exists()


def test_eval_on_a_dataset_with_other_classes(fashion_run, tmp_path, precious):
    ckpt, _ = fashion_run
    proc = run_annkit("eval", f"checkpoint={ckpt}", "dataset=xor", cwd=tmp_path)
    assert proc.returncode == 2
    assert_user_error(
        proc,
        "was trained for classification with 10 classes [T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, "
        "Shirt, Sneaker, Bag, Ankle boot], but dataset xor is classification with 2 classes [0, 1]",
        "Leave out dataset= to score it on its own dataset (fashion_mnist)",
    )
    assert not list((tmp_path / "outputs" / "eval" / "runs").glob("*/metrics.json"))
