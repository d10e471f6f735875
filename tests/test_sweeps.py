"""Sweeps through Hydra's own plugins: joblib runs jobs in parallel processes (with torch threads
split between them), Optuna searches lr / width / depth / dropout / activation for the best
validation accuracy that `annkit train` returns, submitit runs jobs through its executor (locally
here; Slurm on a cluster)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from annkit.config import validate
from annkit.errors import AnnkitError
from annkit.runtime import cores, parallel_jobs
from tests.conftest import assert_user_error, run_annkit

PLAYGROUND = ["experiment=spiral_activations", "dataset.n=200"]


def jobs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def test_joblib_runs_four_jobs_at_once_with_the_cores_split_between_them(tmp_path):
    proc = run_annkit(
        "train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        *PLAYGROUND,
        "trainer.epochs=25",
        "model.activation=relu,tanh,gelu,sigmoid",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [metrics(job) for job in jobs(tmp_path / "sweep")]
    assert len(runs) == 4
    assert len({m["pid"] for m in runs}) == 4  # four worker processes ...
    assert max(m["started_at"] for m in runs) < min(m["finished_at"] for m in runs)  # ... all running at one moment
    assert {m["threads"] for m in runs} == {max(1, cores() // 4)}  # trainer.threads=auto: the cores ÷ the jobs
    activations = {OmegaConf.load(job / ".hydra" / "config.yaml").model.activation for job in jobs(tmp_path / "sweep")}
    assert activations == {"relu", "tanh", "gelu", "sigmoid"}


def test_parallel_jobs_reads_the_launcher_as_joblib_counts():
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert parallel_jobs({"_target_": joblib, "n_jobs": 3}) == 3
    assert parallel_jobs({"_target_": joblib, "n_jobs": -1}) == cores()
    assert parallel_jobs({"_target_": joblib, "n_jobs": -2}) == max(1, cores() - 1)
    assert parallel_jobs({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}) == 1
    assert parallel_jobs(None) == 1


def test_optuna_search_of_4_trials_reports_the_best_parameters(tmp_path):
    proc = run_annkit(
        "train",
        "-m",
        "hparams_search=optuna",
        *PLAYGROUND,
        "trainer.epochs=10",
        "logger.images_every=0",
        "hydra.sweeper.n_trials=4",
        "hydra.sweep.dir=search",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = jobs(tmp_path / "search")
    assert len(trials) == 4
    result = OmegaConf.load(tmp_path / "search" / "optimization_results.yaml")
    accuracy = {trial.name: metrics(trial)["val"]["accuracy"] for trial in trials}
    assert result.best_value == pytest.approx(max(accuracy.values()))  # the returned objective: val accuracy
    assert set(result.best_params) == {
        "optimizer.lr",
        "model.width",
        "model.depth",
        "model.dropout",
        "model.activation",
    }
    best = [t for t in trials if accuracy[t.name] == pytest.approx(result.best_value)]
    configs = [OmegaConf.load(t / ".hydra" / "config.yaml") for t in best]
    assert any(c.optimizer.lr == pytest.approx(result.best_params["optimizer.lr"]) for c in configs)
    for trial in trials:  # each trial trained the network it was given: hidden = [width] × depth
        model = OmegaConf.load(trial / ".hydra" / "config.yaml").model
        assert metrics(trial)["params"] == params_of(2, [model.width] * model.depth, 1)
        assert 1e-4 <= OmegaConf.load(trial / ".hydra" / "config.yaml").optimizer.lr <= 3e-2
    assert "Best parameters" in proc.stdout + proc.stderr


def params_of(inputs: int, hidden: list[int], outputs: int) -> int:
    widths = [inputs, *hidden, outputs]
    return sum(a * b + b for a, b in itertools.pairwise(widths))


def test_a_diverged_job_does_not_stop_the_sweep(tmp_path):
    proc = run_annkit(
        "train",
        "-m",
        *PLAYGROUND,
        "trainer.epochs=3",
        "optimizer=sgd",
        "optimizer.lr=1e12,0.01",
        "model.activation=relu",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = jobs(tmp_path / "sweep")
    assert not (first / "metrics.json").exists()  # it diverged: no metrics, its last good checkpoint kept
    flat = " ".join(proc.stderr.split())
    assert "warning: job 0" in flat and "The training loss became nan" in flat and "The sweep goes on" in flat
    assert metrics(second)["val"]["accuracy"] > 0


def test_submitit_runs_the_jobs_through_its_executor(tmp_path):
    """submitit_local is the submitit launcher with a local executor: the path a Slurm sweep takes."""
    proc = run_annkit(
        "train",
        "-m",
        "hydra/launcher=submitit_local",
        *PLAYGROUND,
        "trainer.epochs=3",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [metrics(job)["epochs"] for job in jobs(tmp_path / "sweep")] == [3, 3]
    assert (tmp_path / "sweep" / ".submitit").is_dir()


def test_the_slurm_launcher_config_composes_with_annkit_sizes():
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        cfg = compose(
            "train", ["hydra/launcher=annkit_slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.cpus_per_task, launcher.tasks_per_node) == (
        "gpu",
        1,
        8,
        1,
    )
    assert parallel_jobs(launcher) == 1  # every job has its own allocation: no thread split


def train_cfg(*overrides: str):
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        return compose("train", list(overrides))


def test_width_and_depth_replace_hidden():
    assert validate(train_cfg("model.width=8", "model.depth=3"))["model"]["hidden"] == [8, 8, 8]
    assert validate(train_cfg("model.width=8", "model.depth=0"))["model"]["hidden"] == []
    assert validate(train_cfg())["model"]["hidden"] == [1024, 1024]
    with pytest.raises(AnnkitError, match=r"model.width=8 needs model.depth too"):
        validate(train_cfg("model.width=8"))


def test_width_without_depth_is_a_clear_error(tmp_path):
    proc = run_annkit("train", "model.depth=2", cwd=tmp_path)
    assert_user_error(proc, "model.depth=2 needs model.width too", "[width] × depth")


def test_the_optuna_config_searches_keys_that_exist():
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        cfg = compose("train", ["hparams_search=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "maximize" and sweeper.sampler.seed == 0
    assert set(sweeper.params) == {"optimizer.lr", "model.width", "model.depth", "model.dropout", "model.activation"}
    for key in sweeper.params:  # each searched key is a real config key (width/depth default to null)
        parent, _, leaf = key.rpartition(".")
        assert leaf in cfg[parent], key
