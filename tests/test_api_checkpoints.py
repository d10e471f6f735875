"""annkit from Python, past training (issue 17): ``annkit.load(…).predict`` gives the numbers of ``annkit predict``'s
predictions.csv for the same inputs, ``annkit.evaluate`` those of ``annkit eval``, ``annkit.lr_find`` those of
``annkit lr-find``; inputs in the wrong units are refused; a run stopped by a signal raises a KeyboardInterrupt
after saving its state, and goes on from Python exactly as an unstopped one."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import annkit
from annkit.data.idx import load_idx
from annkit.errors import Interrupted
from tests.conftest import run_annkit

QUIET = ("trainer.device=cpu", "logger.images_every=0")


def predictions_csv(folder: Path) -> tuple[list[str], list[list[str]]]:
    with open(folder / "predictions.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


@pytest.fixture(scope="module")
def fashion(tmp_path_factory, fashion_dir):
    """A small real Fashion-MNIST model trained from Python, and 12 real test images as PNG files."""
    cwd = tmp_path_factory.mktemp("fashion")
    run = annkit.train("model.hidden=[32]", "trainer.epochs=1", "dataset.limit_train=2000",
                       f"dataset.root={fashion_dir}", *QUIET, run_dir=cwd / "run", progress=False)  # fmt: skip
    images = load_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")[:12]
    (cwd / "pngs").mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(cwd / "pngs" / f"{i:02d}.png")
    return cwd, run, images


def test_load_predict_gives_annkit_predicts_numbers_for_images(fashion):
    cwd, run, images = fashion
    cli = run_annkit("predict", f"checkpoint={run.checkpoint}", "input=pngs", "device=cpu", "hydra.run.dir=p", cwd=cwd)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    header, rows = predictions_csv(cwd / "p")
    model = annkit.load(run.checkpoint)
    labels = [f"{i:02d}.png" for i in range(12)]
    from_array = model.predict(images)  # raw uint8 pixels, N×28×28
    assert from_array.table(labels) == (header, rows)  # every digit of every probability
    assert model.predict(cwd / "pngs").table(labels) == (header, rows)  # a folder, read as annkit predict reads it
    assert model.predict(torch.from_numpy(images).float()).table(labels) == (header, rows)  # whole numbers as floats
    assert from_array.classes == [row[1] for row in rows]
    one = run.predict(images[3])  # one H×W image
    assert one.output.shape == (1, 10) and torch.allclose(one.output[0], from_array.output[3], atol=1e-6)  # 1 vs 12
    with pytest.raises(annkit.AnnkitError, match=r"pixels in the dataset's own units.*\(x \* 255\)\.round\(\)"):
        model.predict(images / 255.0)
    with pytest.raises(annkit.AnnkitError, match=r"shape \(12, 784\).*28×28 images"):
        model.predict(images.reshape(12, -1))


def test_load_predict_takes_raw_rows_and_applies_the_checkpoints_preprocessing(tmp_path):
    """A standardised table (iris) and the playground with computed features: the raw columns in, the CLI's
    numbers out."""
    cases = {
        "iris": ("dataset=csv", "dataset.path=example:iris.csv", "dataset.target=species", "dataset.standardize=true"),
        "spiral": ("dataset=playground", "dataset.features=[x1,x2,x1_sq,x2_sq,x1_x2,sin_x1,sin_x2]"),
    }
    rng = np.random.default_rng(0)
    for name, overrides in cases.items():
        run = annkit.train(*overrides, "trainer.epochs=3", *QUIET, run_dir=tmp_path / name, progress=False)
        model = annkit.load(run.run_dir)  # a run dir: its best checkpoint
        columns = model.inputs.removeprefix("rows of [").removesuffix("]").split(", ")
        rows = rng.normal(3.0, 2.0, size=(7, len(columns))).round(3)
        with open(tmp_path / f"{name}.csv", "w", newline="") as f:
            csv.writer(f).writerows([columns, *rows.tolist()])
        cli = run_annkit("predict", f"checkpoint={run.checkpoint}", f"input={name}.csv", "device=cpu",
                         f"hydra.run.dir={name}-p", cwd=tmp_path)  # fmt: skip
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert model.predict(rows).table() == predictions_csv(tmp_path / f"{name}-p")
    assert columns == ["x1", "x2"]  # the playground takes the raw point; its features are computed from it
    with pytest.raises(annkit.AnnkitError, match=r"rows of 2 finite numbers, the columns \[x1, x2\]"):
        model.predict([[1.0, float("nan")]])


def test_evaluate_gives_annkit_evals_numbers(fashion):
    cwd, run, _ = fashion
    cli = run_annkit("eval", f"checkpoint={run.checkpoint}", "split=val", "device=cpu", "hydra.run.dir=e", cwd=cwd)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    from_cli = json.loads((cwd / "e" / "metrics.json").read_text())
    from_python = annkit.load(run.checkpoint).evaluate("split=val", "device=cpu", run_dir=cwd / "e2", progress=False)
    assert from_python["val"] == from_cli["val"] and from_python["n"] == from_cli["n"] == 5000
    assert json.loads((cwd / "e2" / "metrics.json").read_text())["val"] == from_cli["val"]
    test = annkit.evaluate(run.checkpoint, "device=cpu", run_dir=cwd / "e3", progress=False)["test"]
    assert test["accuracy"] == run.metrics["test"]["accuracy"]  # the run's own test split, reproduced


def test_lr_find_gives_annkit_lr_finds_suggestion_and_plot(tmp_path):
    words = ("dataset=xor", "model=mlp", "trainer.device=cpu", "lr_find.steps=60")
    found = annkit.lr_find(*words, run_dir=tmp_path / "py", progress=False)
    cli = run_annkit("lr-find", *words, "hydra.run.dir=cli", cwd=tmp_path)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    record = json.loads((tmp_path / "cli" / "lr_find.json").read_text())
    assert found.record["suggestion"] == record["suggestion"] == found.suggestion
    assert found.record["sweeps"] == record["sweeps"] and list(found.band) == record["band"]
    assert record["train_command"] == "annkit train " + " ".join(found.train_overrides)
    figure = found.plot()
    assert figure.axes[0].get_xscale() == "log" and figure._repr_png_().startswith(b"\x89PNG")


def test_random_streams_and_flags_are_as_before_a_call(tmp_path, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # whatever a test before this one in the worker set

    def draws() -> tuple:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = draws()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    annkit.train("dataset=xor", "trainer.epochs=2", "trainer.deterministic=true", *QUIET, run_dir=tmp_path / "r",
                 progress=False)  # fmt: skip
    assert draws() == expected
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_a_signal_raises_keyboard_interrupt_after_saving_and_resume_goes_on_exactly(tmp_path, monkeypatch):
    """SIGINT at the end of epoch 2 (sent by a hook, in the middle of the loop): the state is saved, the error is a
    KeyboardInterrupt that says how to go on from Python, and going on ends where an unstopped run ends."""
    import annkit.tasks.train as recipe
    from annkit.loop import Hook

    words = ("dataset=xor", "model=mlp", "trainer.epochs=5", *QUIET)
    whole = annkit.train(*words, run_dir=tmp_path / "whole", progress=False)

    class Stop(Hook):
        def on_epoch_end(self, row, *, is_best):
            if row["epoch"] == 2:
                os.kill(os.getpid(), signal.SIGINT)

    hooks = recipe.training_hooks
    monkeypatch.setattr(recipe, "training_hooks", lambda *a: [*hooks(*a), Stop()])
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as stopped:
        annkit.train(*words, run_dir=tmp_path / "stopped", progress=False)
    assert isinstance(stopped.value, Interrupted) and signal.getsignal(signal.SIGINT) is handler
    assert f"annkit.train('resume={tmp_path / 'stopped'}')" in str(stopped.value)
    assert (tmp_path / "stopped" / "checkpoints" / "last.safetensors").is_file()
    monkeypatch.setattr(recipe, "training_hooks", hooks)
    resumed = annkit.train(f"resume={tmp_path / 'stopped'}", progress=False)
    assert resumed.run_dir == (tmp_path / "stopped").resolve()
    assert resumed.metrics["test"] == whole.metrics["test"]
    assert [r["train/loss"] for r in resumed.history] == [r["train/loss"] for r in whole.history]
