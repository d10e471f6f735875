"""Checkpoints written before a change of annkit's checkpoint format still load, eval, predict, fine-tune and resume.

tests/fixtures/old_playground_run is a run written by annkit before issue 16's redesign (its README says how and
at which commit); these tests read it with today's code and check the numbers, not just the exit codes.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from annkit.checkpoint import load_checkpoint, load_model
from tests.conftest import run_annkit

OLD = Path(__file__).parent / "fixtures" / "old_playground_run"
BEST = OLD / "checkpoints" / "best.safetensors"
TRAINED_WITH = ["dataset=playground", "model.hidden=[8]", "model.norm=none", "scheduler=none"]


def reference_probabilities(points: np.ndarray) -> torch.Tensor:
    """The old model's probabilities in-process, from the checkpoint's own preprocessing."""
    model, ckpt = load_model(BEST)
    pre = ckpt.meta["data"]["preprocessing"]
    assert pre["features"] == ["x1", "x2"] and not pre["standardize"]
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(points.astype(np.float32))), dim=1)


def test_an_old_checkpoint_loads_as_the_network_it_describes():
    model, ckpt = load_model(BEST)
    assert [tuple(p.shape) for p in model.parameters()] == [(8, 2), (8,), (2, 8), (2,)]
    saved = load_checkpoint(BEST).model
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items()) and len(saved) == 4
    assert ckpt.meta["data"]["classes"] == ["negative", "positive"]


def test_an_old_checkpoint_evaluates_to_its_runs_own_test_metrics(tmp_path):
    proc = run_annkit("eval", f"checkpoint={BEST}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scored = json.loads((tmp_path / "e" / "metrics.json").read_text())["test"]
    assert scored == json.loads((OLD / "metrics.json").read_text())["test"]


def test_an_old_checkpoint_predicts_a_csv_as_the_model_computes_in_process(tmp_path):
    points = np.random.default_rng(3).uniform(-5, 5, size=(12, 2)).round(3)
    table = tmp_path / "points.csv"
    table.write_text("x1,x2\n" + "".join(f"{a},{b}\n" for a, b in points))
    proc = run_annkit(
        "predict", f"checkpoint={BEST}", f"input={table}", f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tmp_path / "p" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    probs = reference_probabilities(points)
    got = torch.tensor([[float(r["p_negative"]), float(r["p_positive"])] for r in rows])
    assert len(rows) == 12 and torch.allclose(got, probs, atol=1e-6, rtol=0)
    assert [r["predicted"] for r in rows] == [["negative", "positive"][i] for i in probs.argmax(1).tolist()]


def test_an_old_checkpoint_fine_tunes_with_every_tensor_loaded(tmp_path):
    run_dir = tmp_path / "tuned"
    proc = run_annkit(
        "train", *TRAINED_WITH, f"model.init_from={BEST}", "trainer.epochs=1", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((run_dir / "metrics.json").read_text())["init_from"]
    assert report["path"] == str(BEST) and sorted(report["loaded"]) == [
        "layers.1.bias",
        "layers.1.weight",
        "layers.3.bias",
        "layers.3.weight",
    ]


def test_an_old_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """The old run stopped after 2 epochs; resumed to 3 by today's code, it ends bit for bit where a fresh 3-epoch
    run of today's code ends (same seed, constant lr): the old state and today's loop agree exactly."""
    epochs = 3
    resumed = tmp_path / "old_run"
    shutil.copytree(OLD, resumed)
    proc = run_annkit("train", f"resume={resumed}", f"trainer.epochs={epochs}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fresh = tmp_path / "fresh"
    proc = run_annkit("train", *TRAINED_WITH, f"trainer.epochs={epochs}", f"hydra.run.dir={fresh}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    a = load_checkpoint(resumed / "checkpoints" / "last.safetensors")
    b = load_checkpoint(fresh / "checkpoints" / "last.safetensors")
    assert a.meta["epoch"] == b.meta["epoch"] == epochs and a.meta["step"] == b.meta["step"]
    assert a.model.keys() == b.model.keys() and all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    history = json.loads((resumed / "metrics.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
