"""Inside the network in real runs: the pictures in TensorBoard and as PNGs, the layer health in TensorBoard,
metrics.json and the console, `annkit show` on a run dir and a checkpoint, and its refusals."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import annkit
from annkit.checkpoint import peek, save_checkpoint
from tests.conftest import assert_user_error, make_idx_dataset, run_annkit

PNG = b"\x89PNG\r\n\x1a\n"
QUIET = ("trainer.device=cpu",)


def events(folder):
    acc = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def relu_run(tmp_path_factory):
    """A ReLU network on the circle, lr too high: units die (experiment=dying_relu's third job), 3 epochs."""
    cwd = tmp_path_factory.mktemp("relu")
    proc = run_annkit("train", "experiment=dying_relu", "optimizer.lr=0.5", "trainer.epochs=3", "dataset.n=200",
                      "logger.images_every=2", "hydra.run.dir=run", cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd, proc, json.loads((cwd / "run" / "metrics.json").read_text())


def test_a_run_writes_its_pictures_at_the_cadence_and_as_pngs(relu_run):
    cwd, _, m = relu_run
    acc = events(cwd / "run" / "tb")
    for tag in ("units/input", "units/layer0", "units/layer1", "units/output", "diagram"):
        assert [e.step for e in acc.Images(tag)] == [2, 3], tag  # every 2 epochs and the last
    names = ["units_input", "units_layer0", "units_layer1", "units_output", "diagram", "boundary"]
    assert m["pictures"] == [f"pictures/{n}.png" for n in names]
    for path in m["pictures"]:
        assert (cwd / "run" / path).read_bytes().startswith(PNG)


def test_the_health_is_in_tensorboard_metrics_json_the_warnings_and_the_result_panel(relu_run):
    cwd, proc, m = relu_run
    acc = events(cwd / "run" / "tb")
    health = m["health"]
    assert health["epochs"] == [1, 2, 3] and [layer["units"] for layer in health["layers"]] == [32, 32, 1]
    dead = health["layers"][1]["dead"]
    assert [p.value for p in acc.Scalars("health/dead/layer1")] == pytest.approx(dead)
    assert dead[-1] > 0.5  # lr 0.5 kills most of layer 1
    assert "health/saturated/layer0" not in acc.Tags()["scalars"]  # relu: dead, not saturated
    steps = [p.step for p in acc.Scalars("health/grad_norm/layer2")]  # the output layer, at every log point
    assert steps == sorted(steps) and steps[-1] == m["history"][-1]["step"]
    warned = [w for w in m["warnings"] if "layer 1's 32 relu units are dead" in w]
    assert len(warned) == 1 and "Try a lower optimizer.lr" in warned[0]
    flat = " ".join(proc.stdout.split())
    assert "layers (health on 20 validation samples)" in flat and f"{dead[-1]:.0%}" in flat


def test_annkit_show_draws_a_run_and_lists_what_it_wrote(relu_run):
    cwd, _, _ = relu_run
    proc = run_annkit("show", "run", "hydra.run.dir=slides", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = sorted(p.name for p in (cwd / "slides").glob("*.png"))
    assert written == sorted(["units_input.png", "units_layer0.png", "units_layer1.png", "units_output.png",
                              "diagram.png", "boundary.png"])  # fmt: skip
    for name in written:
        assert f"slides/{name}" in proc.stdout


def test_annkit_show_on_an_image_checkpoint_draws_the_first_layer(tmp_path):
    root = make_idx_dataset(tmp_path / "mnist", n_train=300, n_test=100)
    proc = run_annkit("train", "dataset=mnist", f"dataset.root={root}", "dataset.search=[]", "dataset.download=false",
                      "dataset.verify=false", "dataset.val_size=100", "model.hidden=[12]", "trainer.epochs=1",
                      "logger.first_layer=8", "hydra.run.dir=run", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    acc = events(tmp_path / "run" / "tb")
    (image,) = acc.Images("first_layer")
    assert (image.width, image.height) == (8 * 28 + 7 * 2, 28)  # 8 units, one row, 2-pixel gaps
    assert (tmp_path / "run" / "pictures" / "first_layer.png").is_file()
    proc = run_annkit("show", "run/checkpoints/last.safetensors", "hydra.run.dir=s", "first_layer=4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (tmp_path / "s").glob("*.png")) == ["diagram.png", "first_layer.png"]


def test_annkit_show_refuses_what_is_not_a_run(tmp_path):
    assert_user_error(run_annkit("show", cwd=tmp_path), "annkit show needs a run dir or a checkpoint")
    (tmp_path / "empty").mkdir()
    assert_user_error(run_annkit("show", "empty", cwd=tmp_path), "is a folder without checkpoints/best.safetensors")
    assert_user_error(run_annkit("show", "a", "b", cwd=tmp_path), "annkit show takes one path as a bare word")
    proc = run_annkit("show", "empty", "max_unit=3", cwd=tmp_path)
    assert_user_error(proc, "annkit show's config has no key max_unit")
    assert proc.returncode == 2 and not (tmp_path / "outputs").exists()


def test_a_checkpoint_with_a_forged_plane_is_refused(relu_run, tmp_path):
    cwd, _, _ = relu_run
    ckpt = peek(cwd / "run" / "checkpoints" / "best.safetensors")
    from safetensors.torch import load_file

    meta = json.loads(json.dumps(ckpt.meta))
    meta["data"]["plane"] = {"extent": [0, 0, 1, "os.system"], "axes": ["x1", "x2"]}
    save_checkpoint(tmp_path / "forged.safetensors", load_file(ckpt.path), meta)
    proc = run_annkit("show", "forged.safetensors", cwd=tmp_path)
    assert_user_error(proc, "forged.safetensors is refused", "plane is not an extent")


def test_from_python_show_writes_the_pngs_and_pictures_are_figures(relu_run, tmp_path):
    cwd, _, m = relu_run
    written = annkit.show(cwd / "run", run_dir=tmp_path / "py", progress=False)
    assert sorted(p.name for p in written) == sorted(p.split("/")[1] for p in m["pictures"])
    figures = annkit.load(cwd / "run").pictures(resolution=20)
    assert list(figures)[:2] == ["units/input", "units/layer0"]
    assert all(f._repr_png_().startswith(PNG) for f in figures.values())
    assert set(figures) == {"units/input", "units/layer0", "units/layer1", "units/output", "diagram", "boundary"}
