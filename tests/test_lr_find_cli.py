"""`annkit lr-find` and `annkit train optimizer.lr=auto` as a user runs them, plus the finder on a real
built setup: same training step as train, state restored bit for bit, outputs read back."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import matplotlib.image
import pytest
import torch
from hydra import compose, initialize_config_module
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from annkit.checkpoint import load_checkpoint
from annkit.config import validate
from annkit.errors import AnnkitError
from tests.conftest import assert_user_error, run_annkit

PLAYGROUND = [
    "dataset=playground",
    "dataset.kind=circle",
    "dataset.n=1000",
    "model.hidden=[16]",
    "model.norm=none",
    "model.activation=tanh",
    "optimizer=adam",
    "scheduler=none",
    "trainer.batch_size=64",
    "trainer.device=cpu",
]


def composed(config: str, overrides: list[str]):
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        return compose(config_name=config, overrides=overrides)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def only_dir(cwd: Path, job: str) -> Path:
    runs = list((cwd / "outputs" / job / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def finder_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("lrfind")
    proc = run_annkit(
        "lr-find",
        *PLAYGROUND,
        "lr_find.steps=60",
        "lr_find.repeats=2",
        "lr_find.holdout_batches=2",
        "lr_find.holdout_every=4",
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, only_dir(cwd, "lr_find")


def test_lr_find_writes_json_csv_png_and_prints_the_train_line(finder_run):
    proc, run = finder_run
    found = json.loads((run / "lr_find.json").read_text())
    assert len(found["ladder"]) == 60 and found["ladder"][0] == 1e-7 and found["ladder"][-1] == 10
    assert len(found["sweeps"]) == 2 and [s["seed"] for s in found["sweeps"]] == [0, 1]
    for sweep in found["sweeps"]:
        assert sweep["lrs"] == found["ladder"][: len(sweep["lrs"])]
        assert len(sweep["losses"]) == len(sweep["lrs"]) and len(sweep["smoothed"]) <= len(sweep["lrs"])
        assert sweep["stop"] in ("diverged", "nan", "end")
        assert [h["rung"] for h in sweep["holdout"]] == list(range(3, len(sweep["lrs"]), 4))
    assert set(found["rules"]) == {"half_drop", "valley", "steepest", "minimum/10"}
    lo, hi = found["band"]
    assert lo < found["suggestion"] < hi
    assert found["confidence"] in ("high", "medium", "low")
    assert found["spread_decades"] is not None
    fp = found["fingerprint"]
    assert (
        fp["batch_size"] == 64 and fp["optimizer"] == "Adam" and "16" in fp["model"] and fp["dataset"] == "playground"
    )
    # the line to copy: the same overrides, lr_find.* dropped, the suggestion appended
    line = found["train_command"]
    assert line.startswith("annkit train dataset=playground") and "lr_find." not in line
    assert line.endswith(f"optimizer.lr={found['suggestion']:.3g}")
    assert line in proc.stdout.splitlines()  # on a line of its own, as it copies
    # the CSV holds every rung of every sweep, with the same numbers
    rows = list(csv.DictReader((run / "lr_find.csv").open()))
    assert len(rows) == sum(len(s["lrs"]) for s in found["sweeps"])
    first = [r for r in rows if r["sweep"] == "0"]
    assert [float(r["loss"]) for r in first] == pytest.approx(found["sweeps"][0]["losses"], rel=1e-6)
    image = matplotlib.image.imread(run / "lr_find.png")
    assert image.shape[0] > 300 and image.shape[1] > 500


def test_lr_find_curves_in_tensorboard(finder_run):
    _, run = finder_run
    found = json.loads((run / "lr_find.json").read_text())
    events = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = events.Tags()
    assert {
        "lr_find/sweep_0/loss",
        "lr_find/sweep_1/loss",
        "lr_find/sweep_0/smoothed",
        "lr_find/lr",
        "lr_find/sweep_0/holdout_loss",
    } <= set(tags["scalars"])
    assert "lr_find/curve" in tags["images"]
    losses = [e.value for e in events.Scalars("lr_find/sweep_0/loss")]
    assert losses == pytest.approx(found["sweeps"][0]["losses"], rel=1e-6)
    assert [e.value for e in events.Scalars("lr_find/lr")] == pytest.approx(found["sweeps"][0]["lrs"], rel=1e-6)


def test_finder_leaves_the_built_model_and_optimizer_bit_for_bit(tmp_path):
    """On annkit's own setup (batch norm, dropout, AdamW with state, class weights, l2): after the search
    with 2 repeats every tensor of model and optimizer and every random stream is as before."""
    from annkit.tasks.build import build
    from annkit.tasks.learning_rate import find

    cfg = composed(
        "train",
        [
            *PLAYGROUND,
            "model.norm=batch",
            "model.dropout=0.1",
            "optimizer=adamw",
            "loss.class_weights=balanced",
            "loss.l2=0.01",
            "trainer.grad_clip=1.0",
            "lr_find.steps=30",
            "lr_find.repeats=2",
        ],
    )
    resolved = validate(cfg)
    built = build(resolved)
    model, optimizer, rng = built.network.model, built.network.optimizer, built.machine.rng
    for batch in list(built.problem.train)[:3]:  # some optimizer state to restore
        built.step.objective(model, optimizer, batch)
    before_model = {k: v.clone() for k, v in model.state_dict().items()}
    before_opt = copy.deepcopy(optimizer.state_dict())
    before_rng = (torch.get_rng_state(), rng.get_state())
    find(resolved, built, quiet(), tmp_path, None)
    after_opt = optimizer.state_dict()
    assert all(torch.equal(before_model[k], v) for k, v in model.state_dict().items())
    assert before_opt["param_groups"] == after_opt["param_groups"]
    for i, state in before_opt["state"].items():
        assert all(torch.equal(state[k], after_opt["state"][i][k]) for k in state)
    assert torch.equal(before_rng[0], torch.get_rng_state()) and torch.equal(before_rng[1], rng.get_state())


def test_finder_takes_annkits_own_training_step(tmp_path, monkeypatch):
    """The sweep goes through annkit.loop.train_step with the run's loss, weights, penalty and clipping."""
    import annkit.loop
    from annkit.tasks.build import build
    from annkit.tasks.learning_rate import find

    calls = []
    real = annkit.loop.train_step

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(annkit.loop, "train_step", spy)
    cfg = composed(
        "train",
        [
            *PLAYGROUND,
            "loss.class_weights=[1,3]",
            "loss.l2=0.5",
            "loss.reduction=weighted_mean",
            "trainer.grad_clip=0.25",
            "lr_find.steps=20",
        ],
    )
    resolved = validate(cfg)
    built = build(resolved)
    found = find(resolved, built, quiet(), tmp_path, None)
    sw, per_epoch = found.sweeps[0], len(built.problem.train)
    assert len(calls) == round(sw.epochs * per_epoch) >= len(sw.lrs) >= 10  # every step the sweep took, through it
    if sw.stop == "end":
        assert len(calls) == len(sw.lrs) + 1  # one step per rung, and one after the top rung
    assert all(
        c["penalty"] is built.network.penalty and c["grad_clip"] == 0.25 and c["reduction"] == "weighted_mean"
        for c in calls
    )


def test_train_lr_auto_equals_training_at_the_suggestion_bit_for_bit(tmp_path):
    """optimizer.lr=auto runs the finder, which leaves no trace: the run that follows is the run one gets by
    passing the suggestion as optimizer.lr — same history, same final weights."""
    from annkit.tasks.train import train

    common = [*PLAYGROUND, "trainer.epochs=3", "lr_find.start_lr=1e-4", "lr_find.steps=40"]
    auto = train(composed("train", [*common, "optimizer.lr=auto"]), tmp_path / "auto", console=quiet())
    lr = auto["lr_find"]["suggestion"]
    assert (tmp_path / "auto" / "lr_find.json").exists() and (tmp_path / "auto" / "lr_find.png").exists()
    fixed = train(composed("train", [*common, f"optimizer.lr={lr!r}"]), tmp_path / "fixed", console=quiet())

    def timeless(history):
        return [{k: v for k, v in row.items() if not k.endswith("_s") and k != "samples_per_s"} for row in history]

    assert timeless(auto["history"]) == timeless(fixed["history"])
    assert auto["history"][0]["lr"] == lr
    ckpt = load_checkpoint(tmp_path / "auto" / "checkpoints" / "last.safetensors")
    a, meta = ckpt.model, ckpt.meta
    ckpt = load_checkpoint(tmp_path / "fixed" / "checkpoints" / "last.safetensors")
    b, _ = ckpt.model, ckpt.meta
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert meta["config"]["optimizer"]["lr"] == lr  # the checkpoint records the number, not "auto"


@pytest.mark.parametrize("peak", ["suggestion", "band_top"])
def test_train_lr_auto_with_one_cycle_peaks_where_asked(tmp_path, peak):
    from annkit.tasks.train import train

    m = train(
        composed(
            "train",
            [
                *PLAYGROUND,
                "scheduler=onecycle",
                "trainer.epochs=2",
                "optimizer.lr=auto",
                "lr_find.start_lr=1e-4",
                "trainer.log_every=1",
                "lr_find.steps=40",
                f"lr_find.one_cycle_peak={peak}",
            ],
        ),
        tmp_path,
        console=quiet(),
    )
    found = m["lr_find"]
    expected = found["band"][1] if peak == "band_top" else found["suggestion"]
    assert found["band"][1] > 1.5 * found["suggestion"]  # the two really differ
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.safetensors")
    _, meta = ckpt.model, ckpt.meta
    assert meta["config"]["scheduler"]["max_lr"] == expected
    assert meta["config"]["optimizer"]["lr"] == found["suggestion"]
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0}).Reload()
    assert "lr_find/sweep_0/loss" in events.Tags()["scalars"]
    assert max(e.value for e in events.Scalars("step/lr")) == pytest.approx(expected, rel=1e-3)


def test_tiny_dataset_is_cycled_and_says_so(tmp_path):
    proc = run_annkit(
        "lr-find",
        "dataset=xor",
        "model.hidden=[4]",
        "model.norm=none",
        "optimizer=adam",
        "trainer.batch_size=4",
        "trainer.device=cpu",
        "lr_find.steps=30",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    flat = " ".join(proc.stdout.split())
    assert "out_of_data" in flat and "cycled" in flat
    found = json.loads((only_dir(tmp_path, "lr_find") / "lr_find.json").read_text())
    assert "out_of_data" in found["diagnostics"]
    assert found["sweeps"][0]["epochs"] > 1


@pytest.mark.parametrize(
    "override, needles",
    [
        (["lr_find.start_lr=1", "lr_find.end_lr=0.1"], ["lr_find.start_lr=1 must be below lr_find.end_lr=0.1"]),
        (["lr_find.start_lr=1e-3", "lr_find.end_lr=1e-3"], ["must be below lr_find.end_lr"]),
        (["lr_find.steps=5"], ["lr_find.steps=5 is not valid", "a whole number ≥ 10"]),
        (["lr_find.start_lr=-1e-3"], ["lr_find.start_lr=-0.001 is not valid", "a number > 0.0"]),
        (["lr_find.end_lr=0"], ["lr_find.end_lr=0 is not valid"]),
        (["lr_find.mode=cubic"], ["lr_find.mode='cubic' is not valid", "exp, linear"]),
        (["lr_find.repeats=0"], ["lr_find.repeats=0 is not valid"]),
    ],
)
def test_bad_finder_settings_are_refused_before_any_data_is_read(override, needles):
    with pytest.raises(AnnkitError) as err:
        validate(composed("lr_find", [*PLAYGROUND, *override]))
    for needle in needles:
        assert needle in str(err.value)


def test_bad_finder_setting_from_the_cli_is_one_paragraph_and_exit_2(tmp_path):
    proc = run_annkit("lr-find", *PLAYGROUND, "lr_find.start_lr=1", "lr_find.end_lr=0.1", cwd=tmp_path)
    assert_user_error(proc, "lr_find.start_lr=1 must be below lr_find.end_lr=0.1", "Typical: lr_find.start_lr=1e-7")
    assert proc.returncode == 2


def test_bad_lr_for_train_mentions_auto(tmp_path):
    proc = run_annkit("train", *PLAYGROUND, "optimizer.lr=fast", cwd=tmp_path)
    assert_user_error(proc, "optimizer.lr='fast' is not valid", "or auto")
