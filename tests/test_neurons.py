"""The slides' first neurons: weights given by hand (McCulloch–Pitts gates, XOR by hand), scored without training,
and Rosenblatt's perceptron rule — its update against the formula, its convergence on AND and OR, XOR never."""

from __future__ import annotations

import json

import pytest
import torch

import annkit
from annkit.errors import AnnkitError
from annkit.hand_weights import set_weights
from annkit.losses import perceptron_criterion, reduce_loss
from annkit.models import MLP
from annkit.schema import GATES
from tests.conftest import assert_user_error, run_annkit

QUIET = ("trainer.device=cpu", "logger.images_every=0")
TRUTH = [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_one_perceptron_step_is_the_rule():
    """w ← w + η·Σ (y − ŷ)·x, b ← b + η·Σ (y − ŷ), ŷ = [w·x + b > 0], over a mini-batch of three samples."""
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -1.0]]))
        model.bias.fill_(0.2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    # z = 0.7 (ŷ 1, y 0: wrong), −0.8 (ŷ 0, y 1: wrong), 0.2 (ŷ 1, y 1: right)
    eta = 0.5
    opt = torch.optim.SGD(model.parameters(), lr=eta)
    reduce_loss(perceptron_criterion(model(x), y), reduction="sum").backward()
    opt.step()
    assert model.weight.tolist() == [[0.5 + eta * (-1.0 + 0.0), -1.0 + eta * (0.0 + 1.0)]]
    assert model.bias.item() == pytest.approx(0.2 + eta * (-1 + 1))
    assert perceptron_criterion(torch.tensor([[0.7], [-0.8], [0.2]]), y).tolist() == pytest.approx([0.7, 0.8, 0.0])


def test_hand_weights_fill_every_layer_and_a_wrong_shape_names_the_layer():
    model = MLP(2, [2], 1, "step")
    set_weights(model, [{"weight": [[2, -2], [-2, 2]], "bias": [-1.5, -1.5]}, {"weight": [[2, 2]], "bias": [-1.5]}])
    assert model(torch.tensor(TRUTH, dtype=torch.float32)).gt(0).long().flatten().tolist() == [0, 1, 1, 0]
    with pytest.raises(AnnkitError, match=r"layer 0's weight is 2×3, but the model's layer 0 takes 2×2"):
        set_weights(model, [{"weight": [[1, 2, 3], [4, 5, 6]], "bias": [0, 0]}, {"weight": [[1, 1]], "bias": [0]}])
    with pytest.raises(AnnkitError, match="gives 1 layer, but the model"):
        set_weights(model, [{"weight": [[1, 1]], "bias": [0]}])
    with pytest.raises(AnnkitError, match="rows of finite numbers"):
        set_weights(model, [{"weight": [[1, "os"], [1, 1]], "bias": [0, 0]}, {"weight": [[1, 1]], "bias": [0]}])


def test_the_mcculloch_pitts_gates_score_their_truth_tables_without_training(tmp_path):
    proc = run_annkit("train", "-m", "experiment=mp_gates", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for job, gate in enumerate(("a", "and", "or", "a_and_not_b")):
        m = json.loads((tmp_path / "sweep" / str(job) / "metrics.json").read_text())
        assert m["epochs"] == 0 and m["test"]["accuracy"] == 1.0 and m["val"]["accuracy"] == 1.0
        assert [r["inputs"] for r in m["truth_table"]] == TRUTH
        assert [r["output"] for r in m["truth_table"]] == [r["target"] for r in m["truth_table"]] == list(GATES[gate])
        assert (tmp_path / "sweep" / str(job) / "checkpoints" / "best.safetensors").is_file()
        assert (tmp_path / "sweep" / str(job) / "pictures" / "boundary.png").is_file()
    assert "truth table: 4 of 4 right" in proc.stdout and "nothing trained (trainer.epochs=0)" in proc.stdout


def test_xor_by_hand_is_right_on_all_four(tmp_path):
    proc = run_annkit("train", "experiment=xor_by_hand", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["test"]["accuracy"] == 1.0 and [r["output"] for r in m["truth_table"]] == [0, 1, 1, 0]
    assert not [w for w in m["warnings"] if "derivative of 0" in w]  # nothing trains: no gradient needed


def test_weights_of_the_wrong_shape_are_one_paragraph_and_exit_2(tmp_path):
    (tmp_path / "w.yaml").write_text("- weight: [[1, 1, 1]]\n  bias: [0]\n")
    proc = run_annkit("train", "dataset=logic", "model=logistic", "model.weights=w.yaml", "trainer.epochs=0",
                      "loss=bce", "hydra.run.dir=run", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert_user_error(proc, "the output layer's weight is 1×3, but the model's the output layer takes 1×2")


def test_the_perceptron_learns_and_and_or_and_never_xor(tmp_path):
    runs = {gate: annkit.train("experiment=perceptron_gates", f"dataset.gate={gate}", *QUIET, run_dir=tmp_path / gate,
                               progress=False) for gate in ("and", "or")}  # fmt: skip
    for gate, run in runs.items():
        assert run.metrics["converged"] and run.metrics["test"]["accuracy"] == 1.0, gate
        assert run.metrics["epochs"] < 20 and run.metrics["stopped_early"]
    for seed in range(10):
        run = annkit.train("experiment=perceptron_gates", "dataset.gate=xor", f"trainer.seed={seed}", *QUIET,
                           run_dir=tmp_path / f"xor{seed}", progress=False)  # fmt: skip
        assert run.metrics["test"]["accuracy"] <= 0.75 and not run.metrics["converged"]
        assert run.metrics["epochs"] == 20 and any(
            "did not converge in 20 epochs" in w for w in run.metrics["warnings"]
        )


def test_the_perceptron_rule_is_refused_on_anything_but_one_step_neuron(tmp_path):
    proc = run_annkit("train", "experiment=perceptron_gates", "model.hidden=[4]", cwd=tmp_path)
    assert_user_error(proc, "optimizer=perceptron trains a single step neuron", "model.hidden=[4] adds hidden layers")
    assert proc.returncode == 2 and not (tmp_path / "outputs").exists()
    proc = run_annkit("train", "dataset=iris", "model=logistic", "optimizer=perceptron", cwd=tmp_path)
    assert_user_error(proc, "the network has 3 outputs")
