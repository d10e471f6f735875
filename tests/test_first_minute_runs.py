"""Issue 15, the first minute (continued): the toy datasets train with their own defaults, and every example
of `annkit --help` runs as printed from an empty folder (with its sweep's summary read back). Apart from
tests/test_first_minute.py so that pytest-xdist's workers share the long runs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from annkit.cli import EXAMPLES
from tests.conftest import annkit_command, run_annkit
from tests.test_first_minute import too_wide

# ── 4, 5. toy datasets just run; the help's examples run as printed ──────────────────────────────


@pytest.mark.parametrize("dataset", ["xor", "logic", "playground"])
def test_toy_datasets_run_with_their_own_defaults_and_with_only_trainer_epochs(tmp_path, dataset):
    full = run_annkit("train", f"dataset={dataset}", "hydra.run.dir=full", cwd=tmp_path)
    assert full.returncode == 0, full.stdout + full.stderr
    recipe = OmegaConf.load(str(Path(__file__).parents[1] / "configs" / "recipe" / f"{dataset}.yaml"))
    assert json.loads((tmp_path / "full" / "metrics.json").read_text())["epochs"] == recipe.trainer.epochs
    five = run_annkit("train", f"dataset={dataset}", "trainer.epochs=5", "hydra.run.dir=five", cwd=tmp_path)
    assert five.returncode == 0, five.stdout + five.stderr
    assert json.loads((tmp_path / "five" / "metrics.json").read_text())["epochs"] == 5
    steps = 5 * (1 if dataset != "playground" else 16)
    if steps * 0.25 < 2:  # too short for a one-cycle warm-up: scheduler=auto says so and trains at a constant lr
        assert "constant lr (scheduler=auto:" in " ".join(five.stdout.split())


# the examples of `annkit --help` run as printed, with the placeholders filled in; the long ones shortened by
# overrides appended at the end (Hydra applies the last value of a key), so that each runs in seconds
SHORT = ["trainer.epochs=1", "dataset.limit_train=500", "dataset.val_size=100", "dataset.verify=false"]
PLACEHOLDERS = {
    "outputs/train/runs/<time>": "stopped",
    "<checkpoint>": "done/checkpoints/best.safetensors",
    "<run dir>": "done",
    "<file>": "done/checkpoints/best.safetensors",
}
APPENDED = {  # command → what is appended to it
    "annkit train": SHORT,
    "annkit train model=logistic trainer.epochs=5": SHORT[1:],
    "annkit train -m model.activation=relu,tanh": SHORT,
    "annkit train -m hparams_search=optuna": [*SHORT, "hydra.sweeper.n_trials=2"],
    "annkit lr-find optimizer=sgd": [*SHORT, "lr_find.steps=20"],
    "annkit train optimizer.lr=auto": [*SHORT, "lr_find.steps=20"],
    "annkit train resume=outputs/train/runs/<time>": ["trainer.epochs=2"],
    "annkit train model.init_from=<checkpoint> model.freeze=[0]": SHORT,
    # the toy sets' full default runs are test_toy_datasets_run_with_their_own_defaults_and_with_only_trainer_epochs's
    "annkit train dataset=xor": ["trainer.epochs=5"],
    "annkit train dataset=csv dataset.path=example:iris.csv dataset.target=species": ["trainer.epochs=5"],
}


def filled(command: str, sweep: Path | None = None) -> list[str]:
    if sweep is not None:  # the activation sweep's folder, which ran before: the help lists it first
        command = command.replace("outputs/train/multiruns/<time>", str(sweep))
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    return shlex.split(command)[1:]


def test_every_example_of_the_help_runs_as_printed_from_an_empty_folder(tmp_path, fashion_dir):
    env = {"COLUMNS": "80"}
    for words in (
        ["train", *SHORT, "hydra.run.dir=done"],  # a finished run: its checkpoint for eval, predict, fine-tuning
        ["train", *SHORT, "scheduler=none", "hydra.run.dir=stopped"],
    ):  # a run to go on with (resume= epochs=2)
        assert run_annkit(*words, cwd=tmp_path, env=env).returncode == 0
    (tmp_path / "photos").mkdir()
    from PIL import Image

    Image.new("L", (28, 28), 128).save(tmp_path / "photos" / "shirt.png")
    sweep = None
    for command, _ in EXAMPLES:
        if command == "annkit board":  # serves until stopped: tests/test_board.py starts it and reads it over HTTP
            continue
        if command.startswith("eval "):  # the shell's completion script
            path = f"{Path(annkit_command()[0]).parent}:{os.environ['PATH']}"
            proc = subprocess.run(
                ["bash", "-c", f"{command} && complete -p annkit"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                env={**os.environ, "PATH": path},
            )
            assert proc.returncode == 0 and "annkit" in proc.stdout, proc.stderr
            continue
        words = [*filled(command, sweep), *APPENDED.get(command, [])]
        proc = run_annkit(*words, cwd=tmp_path, env=env)
        assert proc.returncode == 0, f"{command} → {words}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        if not command.startswith("annkit compare"):  # its rows are printed whole, wider than the terminal if need be
            assert too_wide(proc.stdout) == [], command
        if command == "annkit train -m model.activation=relu,tanh":  # the sweep's summary, read back
            sweep = check_sweep_summary(tmp_path, proc.stdout)
        if command.startswith("annkit compare"):  # the swept key is its one differing column, each value a row
            table = " ".join(proc.stdout.split())
            assert "model.activation" in table and "relu" in table and "tanh" in table, proc.stdout


def check_sweep_summary(cwd: Path, out: str) -> Path:
    sweep = max((cwd / "outputs" / "train" / "multiruns").iterdir())
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["swept"] == ["model.activation"] and len(summary["jobs"]) == 2
    for row in summary["jobs"]:
        metrics = json.loads((sweep / row["job"] / "metrics.json").read_text())
        assert row["objective"] == metrics["val"]["accuracy"] and row["test"] == metrics["test"]["accuracy"]
        assert f"{row['objective']:.2%}" in out and row["model.activation"] in out
    assert summary["jobs"][0]["objective"] >= summary["jobs"][1]["objective"] and summary["jobs"][0]["rank"] == 1
    return sweep
