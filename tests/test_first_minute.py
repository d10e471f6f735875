"""Issue 15, the first minute: instant help, completion and --cfg (no torch imported), 80 columns
everywhere, --version, toy datasets that just run, the help's examples running as printed, quiet and
honest output, and threads that do not collapse when two runs share the cores."""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from rich.console import Console

from annkit.cli import EXAMPLES, SUBCOMMANDS
from annkit.cpu import CpuLoad, auto_threads
from annkit.help import leaves, packaged_options
from annkit.meanings import TASK_MEANINGS, meaning
from annkit.rundir import discard_if_unused
from annkit.runtime import Threads
from annkit.tracking import ConsoleReporter, epoch_columns, format_row
from tests.conftest import annkit_command, assert_user_error, run_annkit

HEAVY = ("torch", "torchvision", "matplotlib", "tensorboard")
TOYS = ["logger.images_every=0", "trainer.device=cpu"]


# ── 1. instant: help, --cfg, --version and completion import nothing heavy ────────────────────────


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["train", "--help"],
        ["lr-find", "--help"],
        ["eval", "--help"],
        ["predict", "--help"],
        ["board", "--help"],
        ["train", "--cfg", "job"],
        ["train", "dataset=csv", "--cfg", "job"],
        ["--version"],
        ["train", "--version"],
        ["-sc", "query=bash"],
    ],
)
def test_light_commands_import_no_torch_matplotlib_or_tensorboard(tmp_path, argv):
    probe = (
        f"import sys\nsys.argv = ['annkit', *{argv!r}]\nfrom annkit.cli import main\n"
        f"try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    env = {**os.environ, "COMP_LINE": "annkit train optimizer=ad"}
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout[-500:]
    if argv[0] == "-sc":
        assert "optimizer=adam" in proc.stdout  # the completion answered, without torch
    assert list(tmp_path.iterdir()) == []


def test_composing_a_config_imports_no_torch():
    probe = (
        "import sys\nfrom annkit.help import composed\nconfig, hydra = composed('train', ['dataset=xor'])\n"
        "assert config['dataset']['name'] == 'xor'\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_version_names_annkit_torch_and_hydra(tmp_path):
    from importlib.metadata import version

    for argv in (["--version"], ["train", "--version"], ["eval", "--version"]):
        out = run_annkit(*argv, cwd=tmp_path).stdout
        assert (
            out.startswith("annkit 0.")
            and f"torch {version('torch')}" in out
            and f"hydra-core {version('hydra-core')}" in out
        )


def test_every_key_of_every_option_has_a_meaning():
    missing = []
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        for group in ("model", "dataset", "loss", "optimizer", "scheduler", "trainer", "logger", "lr_find"):
            for option in packaged_options(group):
                cfg = OmegaConf.to_container(compose("train", overrides=[f"{group}={option}"]), resolve=False)
                missing += [
                    f"{key} ({group}={option})" for key, _ in leaves(cfg[group], group) if not meaning(key, option)
                ]
        for task, config in (("eval", "eval"), ("predict", "predict"), ("board", "board")):
            keys = OmegaConf.to_container(compose(config)).keys()
            missing += [f"{task}: {k}" for k in keys if k not in TASK_MEANINGS[task]]
    assert missing == []


# ── 2. 80 columns ────────────────────────────────────────────────────────────────────────────────


def too_wide(text: str, width: int = 80) -> list[str]:
    """Lines wider than ``width`` that are not one whole path or one whole command on a line of its own."""
    bad = []
    for line in text.splitlines():
        if len(line) <= width or re.match(r"\[[\d:]+\]\[HYDRA\] ", line):  # Hydra's own log lines (a sweep's jobs)
            continue
        body = line.strip()
        label_free = re.sub(r"^[a-z][a-z ]{0,11}?\s{2,}", "", body)  # a fact's label: "run dir  ", "init     ", …
        one_path = " " not in label_free
        one_command = label_free.startswith("annkit ") and len(shlex.split(label_free.split(" # ")[0])) >= 2
        if not (one_path or one_command):
            bad.append(line)
    return bad


@pytest.mark.parametrize(
    "argv", [["--help"], *([name, "--help"] for name in SUBCOMMANDS), ["train", "dataset=csv", "--help"]]
)
def test_help_fits_80_columns_and_keeps_commands_whole(tmp_path, argv):
    proc = run_annkit(*argv, cwd=tmp_path, env={"COLUMNS": "80"})
    assert proc.returncode == 0 and too_wide(proc.stdout) == []
    if argv == ["--help"]:
        for command, _ in EXAMPLES:  # each example whole on one line
            assert any(
                line.strip() == command or line.startswith(command + "  ") for line in proc.stdout.splitlines()
            ), command


def test_the_epoch_table_and_the_progress_bar_fit_80_columns():
    row = {
        "epoch": 10,
        "train/loss": 1.2345,
        "train/penalty": 0.1,
        "train/accuracy": 0.9,
        "val/loss": 0.5,
        "val/accuracy": 0.9,
        "val/balanced_accuracy": 0.9,
        "val/macro_f1": 0.5,
        "val/mae": 0.3,
        "val/r2": 0.9,
        "lr": 1e-3,
        "epoch_s": 12.3,
        "samples_per_s": 123456.0,
    }
    for task in ("classification", "multilabel", "regression"):
        for penalty in (False, True):
            console = Console(file=io.StringIO(), width=80, force_terminal=True)
            reporter = ConsoleReporter(console, task=task, penalty=penalty)
            assert {c[0] for c in reporter.columns} <= {c[0] for c in epoch_columns(task, penalty)}
            reporter.on_fit_start(epochs=100, steps_per_epoch=215)
            reporter.on_log(step=50, epoch=1, lr=1e-3, metrics={"loss": 1.2345, "accuracy": 0.91, "penalty": 0.1})
            bar = Console(file=io.StringIO(), width=80, record=True)
            bar.print(reporter.progress.get_renderable())
            reporter.on_fit_end()
            cells = format_row(row, reporter.columns, 100, True)
            assert sum(w + 1 for _, w, _, _ in reporter.columns) <= 80 and cells[-1] == "*"  # the best marker stays
            assert all(len(c) <= w for c, (_, w, _, _) in zip(cells, reporter.columns))  # nothing cut
            assert max(len(line) for line in bar.export_text().splitlines()) <= 80


@pytest.fixture(scope="module")
def narrow_run(tmp_path_factory):
    """A run whose run dir path is long, at 80 columns, then eval and predict of it (also at 80)."""
    cwd = tmp_path_factory.mktemp("narrow")
    run = "a/rather/long/folder/for/a/run/that/will/not/fit/in/a/panel/2026-12-02_10-45-28_817457"
    train = run_annkit(
        "train",
        "dataset=xor",
        "trainer.epochs=5",
        "trainer.early_stopping.patience=50",
        *TOYS,
        f"hydra.run.dir={run}",
        cwd=cwd,
        env={"COLUMNS": "80"},
    )
    assert train.returncode == 0, train.stdout + train.stderr
    best = f"{run}/checkpoints/best.safetensors"
    (cwd / "points.csv").write_text("x1,x2\n0,1\n1,1\n")
    scored = run_annkit("eval", f"checkpoint={best}", cwd=cwd, env={"COLUMNS": "80"})
    predicted = run_annkit("predict", f"checkpoint={best}", "input=points.csv", cwd=cwd, env={"COLUMNS": "80"})
    return cwd, run, train, scored, predicted


def test_a_run_its_eval_and_its_predictions_fit_80_columns_with_paths_whole(narrow_run):
    _cwd, run, *procs = narrow_run
    for proc in procs:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert too_wide(proc.stdout) == [], proc.stdout
        assert "…" not in proc.stdout.replace("1 … ", "")  # nothing cut with an ellipsis
    train, scored, predicted = procs
    lines = train.stdout.splitlines()
    assert f"run dir      {run}" in lines  # below the panel, whole, on its own line
    assert "tensorboard  annkit board logdir=a" in lines
    assert f"checkpoint  {run}/checkpoints/best.safetensors" in scored.stdout.splitlines()
    assert any(line.startswith(f"written     {run[:20]}") or f"{run}" in line for line in predicted.stdout.splitlines())


def test_the_header_says_early_stopping_and_the_threads_it_chose(narrow_run):
    flat = " ".join(narrow_run[2].stdout.replace("│", " ").split())
    assert "stopping early stopping: after 50 epoch(s) without an improvement of val/loss by more than 0" in flat
    assert re.search(r"2 threads \(OMP_NUM_THREADS=2\)|\d threads? \(", flat)


# ── 6. quiet, honest output ─────────────────────────────────────────────────────────────────────


def test_an_optuna_sweep_prints_no_setup_noise_and_no_colour_codes_in_a_pipe(tmp_path):
    proc = run_annkit(
        "train",
        "-m",
        "hparams_search=optuna",
        "experiment=spiral_activations",
        "hydra.sweeper.n_trials=2",
        "trainer.epochs=2",
        "dataset.n=120",
        *TOYS,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "setup plugin" not in out and "\x1b[" not in out and "[I 20" not in out
    assert "sweep: 2 jobs, ranked by val accuracy" in out


def test_a_class_without_training_samples_is_warned_about(tmp_path, fashion_dir):
    fractions = "[1,1,1,1,1,1,1,1,1,0]"
    proc = run_annkit(
        "train",
        "trainer.epochs=1",
        "dataset.limit_train=300",
        "dataset.val_size=100",
        "dataset.verify=false",
        "model.hidden=[16]",
        f"dataset.class_fraction={fractions}",
        f"dataset.root={fashion_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 class(es) have no training samples (Ankle boot)" in " ".join(proc.stdout.split())


def test_a_command_refused_before_any_work_leaves_no_run_dir(tmp_path):
    assert_user_error(
        run_annkit("train", "dataset=xor", "model.activation=relux", cwd=tmp_path), 'Unknown activation "relux"'
    )
    assert_user_error(
        run_annkit("eval", "checkpoint=missing.safetensors", cwd=tmp_path), "No checkpoint at missing.safetensors"
    )
    assert list(tmp_path.iterdir()) == []  # neither a run dir nor an empty outputs/


def test_a_refused_board_leaves_the_folder_it_ran_in(tmp_path):
    """board's Hydra run dir is the working directory itself: a refusal must not remove it."""
    assert_user_error(run_annkit("board", "logdir=missing", cwd=tmp_path), "missing")
    assert tmp_path.is_dir()
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    here = os.getcwd()
    try:
        os.chdir(tmp_path / "run")
        assert not discard_if_unused(Path("."), "train.log") and not discard_if_unused(tmp_path, "train.log")
    finally:
        os.chdir(here)
    assert (tmp_path / "run" / ".hydra").is_dir()


# ── 7. fair on a shared machine ─────────────────────────────────────────────────────────────────


def test_the_auto_rule_leaves_the_cores_others_use():
    assert auto_threads(2, 1, None)[0] == 2
    assert auto_threads(2, 1, 0.1)[0] == 2  # background noise is not a run
    assert auto_threads(2, 1, 1.0) == (1, "others use 1.0 of 2 cores")  # another run on one core
    assert auto_threads(2, 1, 2.0)[0] == 1  # never fewer than one
    assert auto_threads(8, 4, 0.0)[0] == 2  # a joblib sweep's 4 jobs share the 8 cores
    assert auto_threads(8, 1, 3.4)[0] == 5


def test_the_load_of_other_processes_is_read_from_proc(tmp_path):
    """/proc/stat counts every process's ticks on each CPU; this process's own are taken out."""

    def write(busy0: int, busy1: int, own: int) -> None:
        (tmp_path / "self").mkdir(exist_ok=True)
        (tmp_path / "stat").write_text(
            f"cpu  0 0 0 0 0 0 0 0\ncpu0 {busy0} 0 0 1000 5 0 0 0\ncpu1 {busy1} 0 0 1000 5 0 0 0\n"
            f"cpu2 99999 0 0 0 0 0 0 0\nintr 1\n"
        )
        (tmp_path / "self" / "stat").write_text(f"123 (annkit train) R 1 1 1 0 -1 0 0 0 0 0 {own} 0 0 0\n")

    clock = iter([0.0, 2.0, 4.0])
    write(100, 100, 0)
    load = CpuLoad(proc=tmp_path, cpus=[0, 1], clock=lambda: next(clock))  # cpu2 is not ours
    write(100 + 200, 100 + 200, 200)  # 2 s: 400 ticks on our two CPUs, 200 of them this process's
    others, seconds = load.others()
    assert seconds == 2.0 and others == pytest.approx(200 / 100 / 2.0)  # 1 core (at 100 ticks a second)
    write(300 + 200, 300, 400)  # the next 2 s: only this process
    assert load.others()[0] == pytest.approx(0.0)


def test_threads_follow_the_setting_omp_num_threads_and_the_governor(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert Threads(1).count == 1 and Threads(1).describe() == "1 thread (trainer.threads)"
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        pinned = Threads("auto")
        assert pinned.count == 1 and not pinned.governed and "OMP_NUM_THREADS=1" in pinned.describe()
        monkeypatch.delenv("OMP_NUM_THREADS")
        governed = Threads("auto")
        assert governed.governed and governed.count == governed.available

        class Busy:  # another process on one core, then none
            last = (0, 0, -1e9)

            def __init__(self, loads):
                self.loads = iter(loads)

            def others(self):
                return next(self.loads), 2.0

        governed.available, said = 2, []
        governed.load, governed.notify = Busy([1.0, 0.0]), said.append
        governed.on_log(step=50, epoch=1, lr=0.1, metrics={})
        assert governed.count == 1 and governed.changes == [
            {"step": 50, "threads": 1, "why": "others use 1.0 of 2 cores"}
        ]
        governed.on_log(step=100, epoch=1, lr=0.1, metrics={})
        assert governed.count == 2 and len(said) == 2 and said[0].startswith("threads 2 → 1 at step 50")
    finally:
        torch.set_num_threads(before)


def test_two_auto_runs_started_together_leave_each_other_a_core(tmp_path, fashion_dir):
    """Two real runs started at once, OMP_NUM_THREADS unset: each sees the other while its data loads, and
    starts with the cores the other leaves (1 of 2 here)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "HYDRA_FULL_ERROR")}
    args = ["trainer.epochs=1", "dataset.limit_train=2000", "model.hidden=[64]", f"dataset.root={fashion_dir}", *TOYS]
    procs = [
        subprocess.Popen(
            [*annkit_command(), "train", *args, f"hydra.run.dir=r{i}"],
            cwd=tmp_path,
            env={**env, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (0, 1)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    chosen = [
        re.search(r"(\d+) threads? \(auto: others use ([\d.]+) of (\d+) cores\)", " ".join(o.split())) for o in outs
    ]
    assert all(c is not None for c in chosen), outs
    for c in chosen:
        threads, others, cores = int(c.group(1)), float(c.group(2)), int(c.group(3))
        assert others >= 0.5 and threads <= max(1, cores - 1), c.group(0)  # the other run was seen, and left its core
