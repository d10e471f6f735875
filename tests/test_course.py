"""The course's concepts through the real CLI: the slides' experiments, the user's CSV tables, and every
bad input of issue 3 refused with one clear paragraph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from annkit.checkpoint import load_checkpoint
from annkit.models import MLP
from tests.conftest import assert_user_error, make_idx_dataset, run_annkit


def runs(cwd: Path) -> list[Path]:
    """Run dirs of single runs and of sweep jobs, in order."""
    out = cwd / "outputs" / "train"
    return sorted((out / "runs").glob("*")) + sorted(p for p in (out / "multiruns").glob("*/*") if p.is_dir())


def train_ok(cwd: Path, *args: str) -> tuple[str, dict, Path]:
    proc = run_annkit("train", *args, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = runs(cwd)[-1]
    return proc.stdout, json.loads((run / "metrics.json").read_text()), run


def test_xor_is_not_learnable_by_one_neuron(tmp_path):
    _, m, _ = train_ok(tmp_path, "experiment=xor_logistic")
    assert m["params"] == 3  # z = w₁x₁ + w₂x₂ + b: one neuron
    assert m["test"]["accuracy"] <= 0.75  # one line separates at most 3 of XOR's 4 points


def test_xor_is_learnt_by_two_tanh_units(tmp_path):
    out, m, run = train_ok(tmp_path, "experiment=xor_tanh")
    assert m["params"] == 2 * 3 + 3 * 1  # 2 → 2 (tanh) → 1 (sigmoid)
    assert m["test"]["accuracy"] == 1.0 and m["test"]["confusion_matrix"] == [[2, 0], [0, 2]]
    assert "MLP 2 → 2 → 1 (tanh)" in out and "1 output → sigmoid" in out
    ckpt = load_checkpoint(run / "checkpoints" / "best.safetensors")
    _, meta = ckpt.model, ckpt.meta
    assert meta["data"]["task"] == "classification" and meta["data"]["output_activation"] == "sigmoid"


def test_step_activation_warns_and_its_layer_never_moves(tmp_path):
    out, m, run = train_ok(
        tmp_path,
        "dataset=xor",
        "loss=bce",
        "model.hidden=[4]",
        "model.activation=heaviside",
        "model.norm=none",
        "trainer.epochs=3",
        "scheduler=none",
    )
    flat = " ".join(out.split())
    assert "warning: model.activation=heaviside has a derivative of 0 everywhere" in flat
    assert "use sigmoid or tanh to train every layer" in flat
    assert len(m["warnings"]) == 1 and "backpropagation passes no gradient" in m["warnings"][0]
    ckpt = load_checkpoint(run / "checkpoints" / "last.safetensors")
    state, _ = ckpt.model, ckpt.meta
    torch.manual_seed(0)  # trainer.seed=0: the same initial weights as the run
    fresh = MLP(2, [4], 1, "heaviside").state_dict()
    assert torch.equal(state["layers.1.weight"], fresh["layers.1.weight"])  # the hidden layer never moved
    assert not torch.equal(state["layers.3.weight"], fresh["layers.3.weight"])  # the output layer learnt


def test_relu_vs_tanh_sweep_from_one_experiment_file(tmp_path):
    proc = run_annkit("train", "-m", "experiment=spiral_activations", "trainer.epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = runs(tmp_path)
    assert len(jobs) == 2
    activations = [json.loads((j / "metrics.json").read_text()) for j in jobs]
    configs = [(j / ".hydra" / "overrides.yaml").read_text() for j in jobs]
    assert "model.activation=relu" in configs[0] and "model.activation=tanh" in configs[1]
    assert all(a["data"]["source"].startswith("TF Playground spiral") for a in activations)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


@pytest.fixture
def flowers(tmp_path) -> Path:
    """A 3-class table with string labels and a weight column; the classes depend on two features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    label = np.where(x[:, 0] > 0.3, "rose", np.where(x[:, 1] > 0, "lily", "iris"))
    w = np.where(label == "iris", 3.0, 1.0)
    return write_csv(
        tmp_path / "flowers.csv",
        ["petal", "label", "stem", "w"],
        [[round(a, 4), lab, round(b, 4), wi] for (a, b), lab, wi in zip(x, label, w)],
    )


def test_csv_classification_with_string_labels_and_a_weight_column(tmp_path, flowers):
    out, m, run = train_ok(
        tmp_path,
        "dataset=csv",
        f"dataset.path={flowers}",
        "dataset.target=label",
        "dataset.sample_weight=w",
        "model.hidden=[16]",
        "trainer.epochs=40",
        "trainer.batch_size=32",
        "scheduler=none",
        "optimizer.lr=0.01",
        "loss.class_weights=[1,2,1]",
    )
    assert m["task"] == "classification" and m["names"] == ["iris", "lily", "rose"]
    assert m["data"]["train"] + m["data"]["val"] + m["data"]["test"] == 300 and m["data"]["test"] == 60
    assert sum(m["data"]["train_class_counts"].values()) == m["data"]["train"]
    assert m["class_weights"] == [1.0, 2.0, 1.0]
    assert m["test"]["accuracy"] > 0.9  # two thresholds on standardised features: easy for 16 units
    recall = m["test"]["recall"]
    conf = np.array(m["test"]["confusion_matrix"])
    assert recall == pytest.approx({n: conf[i, i] / conf[i].sum() for i, n in enumerate(m["names"])})
    assert m["test"]["balanced_accuracy"] == pytest.approx(np.mean(list(recall.values())))
    assert "sample weights from column w" in out and "task classification (string labels)" in out
    ckpt = load_checkpoint(run / "checkpoints" / "best.safetensors")
    _, meta = ckpt.model, ckpt.meta
    prep = meta["data"]["preprocessing"]
    assert prep["features"] == ["petal", "stem"] and prep["standardize"] and len(prep["std"]) == 2
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"balanced_accuracy/val", "recall/val/iris", "recall/val/rose", "final/test_balanced_accuracy"} <= tags
    (final,) = acc.Scalars("final/test_balanced_accuracy")
    assert final.value == pytest.approx(m["test"]["balanced_accuracy"])
    text = acc.Tensors("test/confusion_matrix/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| **iris** | " + " | ".join(map(str, conf[0])) + " |" in text


def test_csv_regression_reports_mse_mae_r2_and_logs_the_penalty_apart(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(400, 2))
    y = 2 * x[:, 0] - x[:, 1] + 0.5
    table = write_csv(
        tmp_path / "h.csv", ["a", "b", "price"], [[round(a, 5), round(b, 5), round(t, 5)] for (a, b), t in zip(x, y)]
    )
    out, m, run = train_ok(
        tmp_path,
        "dataset=csv",
        f"dataset.path={table}",
        "dataset.target=price",
        "loss=mse",
        "loss.l2=0.01",
        "model=logistic",
        "optimizer.lr=0.05",
        "optimizer.weight_decay=0",
        "scheduler=none",
        "trainer.epochs=60",
        "trainer.batch_size=32",
    )
    assert m["task"] == "regression" and m["best_metric"] == "val/loss"
    assert set(m["test"]) >= {"loss", "mse", "mae", "r2"} and m["test"]["loss"] == pytest.approx(
        m["test"]["mse"], rel=1e-5
    )
    assert m["test"]["r2"] > 0.99  # a linear target, a linear model
    assert m["train"]["penalty"] > 0 and "penalty" in out
    ckpt = load_checkpoint(run / "checkpoints" / "best.safetensors")
    state, _ = ckpt.model, ckpt.meta
    w = state["layers.1.weight"]  # the fitted plane on standardised inputs: w = slope · σ_train
    ckpt = load_checkpoint(run / "checkpoints" / "best.safetensors")
    _, meta = ckpt.model, ckpt.meta
    std = torch.tensor(meta["data"]["preprocessing"]["std"])
    torch.testing.assert_close(w[0] / std, torch.tensor([2.0, -1.0]), atol=0.05, rtol=0)
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert {"loss/penalty", "r2/val", "mae/val", "final/test_r2"} <= set(acc.Tags()["scalars"])


def test_csv_multilabel_targets_use_one_sigmoid_per_label(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 2))
    rows = [[round(a, 4), round(b, 4), int(a > 0), int(b > 0)] for a, b in x]
    table = write_csv(tmp_path / "tags.csv", ["f1", "f2", "red", "big"], rows)
    _, m, _ = train_ok(
        tmp_path,
        "dataset=csv",
        f"dataset.path={table}",
        "dataset.target=[red,big]",
        "loss=bce",
        "model.hidden=[8]",
        "trainer.epochs=30",
        "trainer.batch_size=32",
        "scheduler=none",
        "optimizer.lr=0.01",
    )
    assert m["task"] == "multilabel" and m["names"] == ["red", "big"]
    assert set(m["test"]["f1"]) == {"red", "big"} and m["test"]["macro_f1"] > 0.85
    assert m["test"]["accuracy"] == pytest.approx(np.mean(list(m["test"]["label_accuracy"].values())))


# ---- bad input: one paragraph, exit ≠ 0, nothing lost ----------------------------------------------


def test_class_weights_of_the_wrong_length(tmp_path, precious):
    proc = run_annkit("train", "dataset=xor", "loss=bce", "loss.class_weights=[1,2,3]", cwd=tmp_path)
    assert_user_error(
        proc,
        "loss.class_weights has 3 values, but dataset xor has 2 classes (0: 0, 1: 1)",
        "loss.class_weights=[1, 1]",
        "loss.class_weights=balanced",
    )


def test_negative_class_weights(tmp_path, precious):
    proc = run_annkit("train", "dataset=xor", "loss=bce", "loss.class_weights=[1,-1]", cwd=tmp_path)
    assert_user_error(proc, "loss.class_weights=[1, -1] is not valid", "numbers ≥ 0")


def test_bce_on_ten_single_label_classes_suggests_ce(tmp_path, precious):
    root = make_idx_dataset(tmp_path / "digits")
    proc = run_annkit(
        "train",
        "dataset=mnist",
        f"dataset.root={root}",
        "dataset.search=[]",
        "dataset.download=false",
        "dataset.verify=false",
        "dataset.val_size=100",
        "loss=bce",
        cwd=tmp_path,
    )
    assert_user_error(proc, "loss=bce on 10-class single-label targets", "Use loss=ce (softmax + cross-entropy)")


def test_mse_regression_on_string_labels(tmp_path, precious, flowers):
    before = flowers.read_bytes()
    proc = run_annkit(
        "train",
        "dataset=csv",
        f"dataset.path={flowers}",
        "dataset.target=label",
        "dataset.task=regression",
        "loss=mse",
        cwd=tmp_path,
    )
    assert_user_error(proc, "label", "dataset.task=classification")
    assert flowers.read_bytes() == before


def test_ce_on_regression_targets_suggests_mse(tmp_path, precious):
    table = write_csv(tmp_path / "r.csv", ["a", "y"], [[i, i * 0.37] for i in range(50)])
    proc = run_annkit("train", "dataset=csv", f"dataset.path={table}", "dataset.target=y", "loss=ce", cwd=tmp_path)
    assert_user_error(proc, "loss=ce needs class labels, but dataset csv has regression targets", "Use loss=mse")


def test_csv_missing_target_column(tmp_path, precious, flowers):
    proc = run_annkit("train", "dataset=csv", f"dataset.path={flowers}", "dataset.target=lable", cwd=tmp_path)
    assert_user_error(proc, "lable", 'Did you mean "label"?', "petal", "stem")


def test_csv_non_numeric_feature_names_line_and_column(tmp_path, precious):
    table = write_csv(tmp_path / "t.csv", ["a", "colour", "y"], [[1, 2, 0], [2, "red", 1], [3, 4, 0]] * 5)
    proc = run_annkit("train", "dataset=csv", f"dataset.path={table}", "dataset.target=y", cwd=tmp_path)
    assert_user_error(proc, "colour", "line 3", "red", "dataset.features")


def test_csv_nan_names_line_and_column(tmp_path, precious):
    rows = [[i, i % 2, i % 3] for i in range(20)]
    rows[6][0] = "nan"
    table = write_csv(tmp_path / "t.csv", ["a", "b", "y"], rows)
    proc = run_annkit("train", "dataset=csv", f"dataset.path={table}", "dataset.target=y", cwd=tmp_path)
    assert_user_error(proc, "line 8", 'feature column "a" holds "nan"', "Fill the values in")


def test_csv_negative_sample_weight(tmp_path, precious, flowers):
    text = flowers.read_text().splitlines()
    text[5] = ",".join([*text[5].split(",")[:-1], "-2"])
    flowers.write_text("\n".join(text) + "\n")
    proc = run_annkit(
        "train",
        "dataset=csv",
        f"dataset.path={flowers}",
        "dataset.target=label",
        "dataset.sample_weight=w",
        cwd=tmp_path,
    )
    assert_user_error(proc, "Line 6 of", 'the weight in column "w" (dataset.sample_weight) is -2')


def test_unknown_activation_parameter(tmp_path, precious):
    proc = run_annkit("train", "dataset=xor", "model.activation={name:leaky_relu,slope:0.1}", cwd=tmp_path)
    assert_user_error(proc, "leaky_relu does not take the argument(s) slope", "Its parameters are: negative_slope")
