"""Training-set shaping (skewed classes, crowd labels, weight files) and the tabular loaders."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from annkit.data import load_data
from annkit.data.shaping import corrupt_labels, read_weight_file, shape_training_set, thin_classes
from annkit.errors import AnnkitError

CPU = torch.device("cpu")
NO_NOISE = {"fraction": 0.0, "error_rate": 0.5, "weight": 1.0}


def test_thin_classes_keeps_the_asked_share_of_each_class():
    labels = np.repeat([0, 1, 2], [100, 200, 50])
    idx = np.arange(350)
    kept = thin_classes(idx, labels, [0.1, 1.0, 0.0], np.random.default_rng(0))
    assert np.bincount(labels[kept], minlength=3).tolist() == [10, 200, 0]
    assert np.all(np.diff(kept) > 0)  # file order kept
    assert len(thin_classes(idx, labels, [0.001, 0, 0], np.random.default_rng(0))) == 1  # at least one when f > 0


def test_corrupt_labels_changes_only_crowd_labels_to_other_classes():
    labels = np.arange(10_000) % 10
    noisy, crowd = corrupt_labels(labels, 10, fraction=0.4, error_rate=0.5, rng=np.random.default_rng(0))
    assert crowd.sum() == 4000
    wrong = noisy != labels
    assert not wrong[~crowd].any()  # experts keep their labels
    assert wrong[crowd].mean() == pytest.approx(0.5, abs=0.03)
    assert set(np.unique(noisy[wrong] - labels[wrong]) % 10) <= set(range(1, 10))  # a different class
    # each wrong label is uniform over the 9 other classes
    shifts = np.bincount((noisy[wrong] - labels[wrong]) % 10, minlength=10)[1:]
    assert shifts.min() > 0.7 * shifts.mean()


def test_shaping_order_and_weights():
    labels = np.repeat([0, 1], [500, 500])
    weights = np.linspace(0.5, 1.5, 1000).astype(np.float32)
    shaped = shape_training_set(
        np.arange(1000),
        labels,
        task="classification",
        k=2,
        limit_train=800,
        class_fraction=[1.0, 0.5],
        label_noise={"fraction": 0.25, "error_rate": 1.0, "weight": 0.1},
        weights=weights,
        rng=np.random.default_rng(0),
    )
    assert shaped.idx.max() < 800  # limit first: the first 800 rows (500 of class 0, 300 of class 1)
    assert np.bincount(labels[shaped.idx]).tolist() == [500, 150]
    crowd = shaped.labels != labels[shaped.idx]  # error_rate 1: every crowd label is wrong
    assert crowd.sum() == round(0.25 * 650)
    np.testing.assert_allclose(shaped.weights, weights[shaped.idx] * np.where(crowd, 0.1, 1.0), rtol=1e-6)
    assert any("class_fraction kept 650 of 800" in n for n in shaped.notes)


def test_shaping_refuses_class_knobs_for_regression():
    with pytest.raises(AnnkitError, match="act on class labels, but this dataset's task is regression"):
        shape_training_set(
            np.arange(5), np.zeros(5), task="regression", k=1, class_fraction=[1.0], rng=np.random.default_rng(0)
        )


def test_weight_files(tmp_path):
    np.save(tmp_path / "w.npy", np.array([1.0, 2.0, 0.0]))
    assert read_weight_file(tmp_path / "w.npy", 3, "t").tolist() == [1.0, 2.0, 0.0]
    (tmp_path / "w.txt").write_text("weight\n1\n0.5\n2\n")
    assert read_weight_file(tmp_path / "w.txt", 3, "t").tolist() == [1.0, 0.5, 2.0]
    with pytest.raises(AnnkitError, match="holds 3 weights, but t has 4 rows"):
        read_weight_file(tmp_path / "w.txt", 4, "t")
    (tmp_path / "neg.txt").write_text("1\n-2\n1\n")
    with pytest.raises(AnnkitError, match="the weight at line 2 is -2; weights must be finite numbers ≥ 0"):
        read_weight_file(tmp_path / "neg.txt", 3, "t")
    with pytest.raises(AnnkitError, match="no such file"):
        read_weight_file(tmp_path / "none.txt", 3, "t")


@pytest.mark.parametrize(
    "gate,outputs",
    [("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1]), ("nand", [1, 1, 1, 0]), ("nor", [1, 0, 0, 0]), ("xor", [0, 1, 1, 0])],
)
def test_logic_gates_are_their_truth_tables(gate, outputs):
    data = load_data({"name": "logic", "gate": gate, "copies": 3, "noise": 0.0}, seed=0, device=CPU)
    assert data.test.x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and data.test.y.tolist() == outputs
    assert len(data.train) == 12 and data.train.y.tolist() == outputs * 3
    assert data.task == "classification" and data.names == ("0", "1")


def test_xor_noise_jitters_training_copies_only():
    data = load_data({"name": "xor", "copies": 100, "noise": 0.1}, seed=0, device=CPU)
    jitter = data.train.x - torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float32).repeat(100, 1)
    assert jitter.std().item() == pytest.approx(0.1, rel=0.1)
    assert data.val.x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


def playground(**over):
    spec = {
        "name": "playground",
        "kind": "circle",
        "task": "classification",
        "n": 400,
        "noise": 0.0,
        "train_ratio": 0.5,
        "val_size": 0.1,
        "features": ["x1", "x2", "x1_x2"],
        "standardize": True,
        "class_fraction": None,
        "label_noise": NO_NOISE,
    }
    return load_data({**spec, **over}, seed=0, device=CPU)


def test_playground_split_sizes_and_standardisation_fitted_on_train():
    data = playground()
    assert (len(data.train), len(data.val), len(data.test)) == (200, 40, 160)
    torch.testing.assert_close(data.train.x.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(data.train.x.std(0, unbiased=False), torch.ones(3), atol=1e-5, rtol=0)
    assert data.test.x.std(0).sub(1).abs().max() > 1e-3  # test rows use the training μ, σ, not their own
    assert data.preprocessing["features"] == ["x1", "x2", "x1_x2"] and len(data.preprocessing["mean"]) == 3
    raw = playground(standardize=False)
    x = raw.train.x
    torch.testing.assert_close(x[:, 2], x[:, 0] * x[:, 1])  # the x1·x2 feature
    reg = playground(kind="plane", task="regression")
    assert reg.task == "regression" and reg.train.y.shape == (200, 1) and reg.names == ("target",)


def test_csv_single_file_and_separate_files(tmp_path):
    rows = ["a,b,label,w"] + [f"{i},{i % 7},{'yes' if i % 3 else 'no'},{1 + i % 2}" for i in range(100)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    spec = {
        "name": "csv",
        "path": str(tmp_path / "t.csv"),
        "train": None,
        "val": None,
        "test": None,
        "target": "label",
        "features": None,
        "task": "auto",
        "sample_weight": "w",
        "standardize": False,
        "val_size": 0.2,
        "test_size": 10,
        "delimiter": ",",
        "limit_train": None,
        "class_fraction": None,
        "label_noise": NO_NOISE,
    }
    data = load_data(spec, seed=0, device=CPU)
    assert (len(data.train), len(data.val), len(data.test)) == (70, 20, 10)
    assert data.names == ("no", "yes") and data.preprocessing["features"] == ["a", "b"]
    assert torch.equal(data.train.w, 1 + data.train.x[:, 0] % 2)  # the weight column, row by row
    assert torch.equal(data.train.y, (data.train.x[:, 0] % 3 != 0).long())
    (tmp_path / "test.csv").write_text("a,b,label\n1,1,no\n2,2,yes\n")
    separate = load_data(
        {**spec, "path": None, "train": str(tmp_path / "t.csv"), "test": str(tmp_path / "test.csv")}, seed=0, device=CPU
    )
    assert len(separate.test) == 2 and separate.test.y.tolist() == [0, 1] and len(separate.train) == 80
    with pytest.raises(AnnkitError, match=re.escape("needs exactly one of dataset.path")):
        load_data({**spec, "train": str(tmp_path / "t.csv")}, seed=0, device=CPU)
    with pytest.raises(
        AnnkitError, match=re.escape("dataset.val / dataset.test files cannot go with it")
    ):  # never silently ignored
        load_data({**spec, "test": str(tmp_path / "test.csv")}, seed=0, device=CPU)
    assert separate.test.x.tolist() == [[1.0, 1.0], [2.0, 2.0]]  # its own rows, with the training file's columns
