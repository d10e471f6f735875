"""annkit export: ONNX and torch.export models with the preprocessing inside, answering as annkit predict does."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import assert_user_error, run_annkit

onnx = pytest.importorskip("onnx")  # the export extra: pip install "annkit[export]" (dev installs it)
ort = pytest.importorskip("onnxruntime")


def predictions(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_the_default_mlp_exports_with_its_pixels_preprocessing_and_answers_as_predict(tmp_path, fashion_dir):
    run = run_annkit("train", f"dataset.root={fashion_dir}", "dataset.limit_train=2000", "trainer.epochs=1",
                     "logger.images_every=0", "hydra.run.dir=run", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    proc = run_annkit("export", "checkpoint=run", "hydra.run.dir=ex", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every class index the same" in " ".join(proc.stdout.split())
    model = tmp_path / "ex" / "model.onnx"
    meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    names = json.loads(meta["annkit.classes"])
    assert names[:2] == ["T-shirt/top", "Trouser"] and meta["annkit.task"] == "classification"
    assert len(meta["annkit.source_sha256"]) == 64
    # eight test images as PNG files: annkit predict reads them, onnxruntime takes the same pixels
    images = np.stack([np.asarray(Image.open(p)) for p in write_pngs(tmp_path, fashion_dir)])
    pred = run_annkit("predict", "checkpoint=run/checkpoints/best.safetensors", "input=pngs", "hydra.run.dir=p",
                      cwd=tmp_path)  # fmt: skip
    assert pred.returncode == 0, pred.stdout + pred.stderr
    rows = predictions(tmp_path / "p" / "predictions.csv")
    probabilities, index = session(model).run(None, {"input": images})
    expected = np.array([[float(r[f"p_{n}"]) for n in names] for r in rows])
    assert np.abs(probabilities - expected).max() <= 1e-5
    assert [names[i] for i in index] == [r["predicted"] for r in rows]


def write_pngs(tmp_path, fashion_dir):
    from annkit.data.idx import load_idx

    folder = tmp_path / "pngs"
    folder.mkdir()
    pixels = load_idx(next(fashion_dir.glob("t10k-images*")))[:8]
    paths = []
    for i, image in enumerate(pixels):
        path = folder / f"{i}.png"
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    """A playground model with feature crosses, standardised: its features are computed inside the graph."""
    cwd = tmp_path_factory.mktemp("playground")
    proc = run_annkit("train", "dataset=playground", "dataset.kind=xor", "dataset.features=[x1,x2,x1_sq,x1_x2,sin_x1]",
                      "dataset.standardize=true", "model.hidden=[8]", "trainer.epochs=5", "logger.images_every=0",
                      "hydra.run.dir=run", cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rng = np.random.default_rng(1)
    points = rng.uniform(-6, 6, size=(50, 2))
    with open(cwd / "points.csv", "w", newline="") as f:
        csv.writer(f).writerows([["x1", "x2"], *points.tolist()])
    pred = run_annkit("predict", "checkpoint=run/checkpoints/best.safetensors", "input=points.csv", "hydra.run.dir=p",
                      cwd=cwd)  # fmt: skip
    assert pred.returncode == 0, pred.stdout + pred.stderr
    return cwd, points, predictions(cwd / "p" / "predictions.csv")


def test_a_playground_model_takes_raw_points_and_computes_its_features_inside(playground):
    cwd, points, rows = playground
    proc = run_annkit("export", "checkpoint=run", "out=m.onnx", "hydra.run.dir=ex", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "features x1, x2, x1_sq, x1_x2, sin_x1 computed inside" in " ".join(proc.stdout.split())
    probabilities, index = session(cwd / "m.onnx").run(None, {"input": points.astype(np.float32)})
    expected = np.array([[float(r["p_negative"]), float(r["p_positive"])] for r in rows])
    assert np.abs(probabilities - expected).max() <= 1e-5
    assert [["negative", "positive"][i] for i in index] == [r["predicted"] for r in rows]


def test_format_torch_writes_an_exported_program_with_the_same_answers(playground):
    cwd, points, rows = playground
    proc = run_annkit("export", "checkpoint=run", "format=torch", "hydra.run.dir=pt", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    extra = {"annkit.json": ""}
    program = torch.export.load(str(cwd / "pt" / "model.pt2"), extra_files=extra)
    probabilities, _ = program.module()(torch.from_numpy(points.astype(np.float32)))
    expected = np.array([[float(r["p_negative"]), float(r["p_positive"])] for r in rows])
    assert np.abs(probabilities.detach().numpy() - expected).max() <= 1e-5
    assert json.loads(extra["annkit.json"])["annkit.classes"] == '["negative", "positive"]'


def test_a_csv_regression_model_returns_its_values(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.1 * rng.normal(size=200)
    with open(tmp_path / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows([["a", "b", "y"], *np.column_stack([x, y]).tolist()])
    proc = run_annkit("train", "dataset=csv", "dataset.path=table.csv", "dataset.target=y", "dataset.standardize=true",
                      "loss=mse", "model.hidden=[8]", "trainer.epochs=3", "hydra.run.dir=run", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tmp_path / "new.csv", "w", newline="") as f:
        csv.writer(f).writerows([["a", "b"], *x[:20].tolist()])
    assert run_annkit("predict", "checkpoint=run/checkpoints/best.safetensors", "input=new.csv", "hydra.run.dir=p",
                      cwd=tmp_path).returncode == 0  # fmt: skip
    assert run_annkit("export", "checkpoint=run", "hydra.run.dir=ex", cwd=tmp_path).returncode == 0
    (values,) = session(tmp_path / "ex" / "model.onnx").run(None, {"input": x[:20].astype(np.float32)})
    expected = np.array([float(r["y"]) for r in predictions(tmp_path / "p" / "predictions.csv")])
    assert np.abs(values[:, 0] - expected).max() <= 1e-5


def test_a_pickled_checkpoint_is_refused_and_nothing_is_written(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "model.pt")
    proc = run_annkit("export", "checkpoint=model.pt", "hydra.run.dir=ex", cwd=tmp_path)
    assert_user_error(proc, "model.pt")
    assert proc.returncode == 2 and not list(tmp_path.glob("ex/*.onnx"))


def test_without_onnx_installed_the_export_says_what_to_install(monkeypatch):
    import sys

    from annkit.errors import AnnkitError
    from annkit.export import _onnx_modules

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(AnnkitError, match=r'pip install "annkit\[export\]"'):
        _onnx_modules()
