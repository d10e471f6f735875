"""Issue 14: a checkpoint from a stranger cannot touch your files, a run is never overwritten, a run
resumes and evaluates from anywhere, and bad inputs are refused before any work.

Each test here failed on the code before it: a crafted checkpoint's ``hydra.*`` overrides truncated a
file through Hydra's log handler; a second run into the same ``hydra.run.dir`` replaced the first; a
CSV run's relative path broke resume and eval from another folder; a one-class CSV trained, then died
with a traceback; a model too large for memory died in the allocator after the data was loaded; a
failed download left folders behind."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from rich.console import Console
from safetensors import safe_open
from safetensors.torch import save_file

from annkit.checkpoint import load_checkpoint, load_model
from annkit.commands import command, hydra_value, override
from annkit.errors import AnnkitError
from annkit.rundir import protect
from annkit.tasks.evaluate import evaluate_checkpoint
from annkit.tasks.evaluate import prepare_argv as evaluate_argv
from annkit.tasks.train import prepare_argv, train
from tests.conftest import OFFLINE_ENV, annkit_command, assert_user_error, make_idx_dataset, run_annkit

XOR = [
    "experiment=xor_tanh",
    "trainer.epochs=3",
    "trainer.device=cpu",
    "logger.images_every=0",
    "logger.confusion=false",
]
# each a line a crafted checkpoint's command line may hold, and the words of the refusal that names it
CRAFTED = {
    "hydra.job_logging.handlers.file.filename={sentinel}": "is a Hydra setting",
    "+hydra.job_logging.handlers.file.mode=w": "is a Hydra setting",
    "hydra.callbacks.pwn._target_=os.system": "is a Hydra setting",
    "+model.mode=w": "adds, deletes or moves a key",
    "model.evil=1": "is not a key of annkit's config",
    "trainer.epochs=many": "has a value of the wrong type (expected a whole number ≥ 0)",
    "optimizer._target_=builtins.eval": "names a class outside torch.optim",
    "trainer.seed=${oc.env:HOME}": "holds an interpolation",
    "experiment=pwn": "names an option of config group experiment that annkit does not ship",
}


def composed(overrides: list[str]):
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        return compose(config_name="train", overrides=overrides)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=150)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` → the sha256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def craft(src: Path, dst: Path, change) -> Path:
    """A copy of checkpoint ``src`` whose JSON metadata ``change(meta)`` edited: a valid safetensors
    file with no pickle in it, as an attacker would make one."""
    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()["annkit"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    change(meta)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dst), metadata={"annkit": json.dumps(meta)})
    return dst


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory) -> Path:
    """A finished three-epoch XOR run (in-process): its checkpoints are the attacker's raw material."""
    run = tmp_path_factory.mktemp("xor") / "run"
    train(composed(XOR), run, console=quiet(), overrides=XOR)
    return run


# ── 1. crafted checkpoints ───────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("line", list(CRAFTED))
def test_every_reader_refuses_a_checkpoint_whose_stored_command_line_is_not_annkits(tmp_path, xor_run, line):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("precious")
    line = line.replace("{sentinel}", str(sentinel))
    bad = craft(
        xor_run / "checkpoints" / "last.safetensors",
        tmp_path / "run" / "checkpoints" / "last.safetensors",
        lambda meta: meta["overrides"].append(line),
    )
    for read in (
        lambda: load_checkpoint(bad),
        lambda: load_model(bad),
        lambda: prepare_argv([f"resume={bad.parent.parent}"]),
    ):
        with pytest.raises(AnnkitError, match="is refused: the command line it stores holds") as err:
            read()
        assert CRAFTED[line.replace(str(sentinel), "{sentinel}")] in str(err.value) and repr(line) in str(err.value)
    assert sentinel.read_text() == "precious"


SPEC_EDITS = {
    "an extra argument": (lambda m: m["model"].update(bias=False), "its model is not the arguments"),
    "a negative width": (lambda m: m["model"].update(hidden=[-4]), "its model's widths are not whole numbers"),
    "a dropout of 2": (lambda m: m["model"].update(dropout=2.0), "its model's dropout or norm"),
    "a class as activation": (lambda m: m["model"].update(activation={"name": "os.system"}), "its model's activation"),
    "another loss": (lambda m: m["head"].update(loss="pickle"), "its head's task, loss or output activation"),
    "renamed classes": (lambda m: m["head"].update(names=["yes", "no"]), "its head's task and names differ"),
}


@pytest.mark.parametrize("edit", list(SPEC_EDITS))
def test_the_model_and_head_a_checkpoint_stores_are_checked_before_anything_is_built(xor_run, tmp_path, edit):
    """Checkpoints store the constructor arguments of the model and the head (issue 16): edited ones are refused."""
    change, message = SPEC_EDITS[edit]
    bad = craft(xor_run / "checkpoints" / "best.safetensors", tmp_path / "best.safetensors", change)
    with pytest.raises(AnnkitError, match=re.escape(message)):
        load_model(bad)
    meta = load_checkpoint(xor_run / "checkpoints" / "best.safetensors").meta
    assert meta["model"]["hidden"] == [2] and meta["head"]["names"] == meta["data"]["classes"]


def test_resume_eval_predict_and_init_from_refuse_it_through_the_cli_and_the_file_stays_whole(tmp_path, xor_run):
    """The attack of the issue, as a user meets it: Hydra's file handler pointed at a file of yours,
    in mode w. The file stays byte for byte, and nothing of the run dir changes."""
    sentinel = tmp_path / "notes.txt"
    sentinel.write_text("my notes\n")
    run = tmp_path / "run"
    shutil.copytree(xor_run, run)
    craft(
        xor_run / "checkpoints" / "last.safetensors",
        run / "checkpoints" / "last.safetensors",
        lambda meta: meta["overrides"].extend(
            [f"hydra.job_logging.handlers.file.filename={sentinel}", "+hydra.job_logging.handlers.file.mode=w"]
        ),
    )
    craft(
        xor_run / "checkpoints" / "best.safetensors",
        run / "checkpoints" / "best.safetensors",
        lambda meta: meta["overrides"].append(f"hydra.job_logging.handlers.file.filename={sentinel}"),
    )
    (tmp_path / "points.csv").write_text("x1,x2\n0,1\n")
    before = tree_digest(run)
    best = run / "checkpoints" / "best.safetensors"
    for args in (
        ["train", "resume=run", "trainer.epochs=5"],
        ["eval", f"checkpoint={best}"],
        ["predict", f"checkpoint={best}", "input=points.csv"],
        ["train", *XOR, f"model.init_from={best}"],
    ):
        proc = run_annkit(*args, cwd=tmp_path)
        assert_user_error(proc, "is refused: the command line it stores holds", "is a Hydra setting")
        assert proc.returncode == 2
    assert sentinel.read_text() == "my notes\n"
    assert tree_digest(run) == before


def test_a_checkpoints_dataset_root_and_download_create_nothing_and_fetch_nothing(tmp_path):
    """eval with the checkpoint's own dataset: a stored dataset.root that does not exist here and
    download=true are data, not instructions. Nothing is created, nothing is fetched."""
    idx = make_idx_dataset(tmp_path / "idx", n_train=300, n_test=50)
    words = [
        "model.hidden=[8]",
        "trainer.epochs=1",
        "dataset.val_size=50",
        "dataset.verify=false",
        "dataset.search=[]",
        f"dataset.root={idx}",
        "trainer.device=cpu",
        "scheduler=none",
        "logger.images_every=0",
    ]
    run = tmp_path / "run"
    train(composed(words), run, console=quiet(), overrides=words)
    target = tmp_path / "elsewhere" / "deep"
    evil = craft(
        run / "checkpoints" / "best.safetensors",
        tmp_path / "evil.safetensors",
        lambda meta: meta["config"]["dataset"].update({"root": str(target), "download": True, "search": []}),
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = run_annkit("eval", f"checkpoint={evil}", cwd=cwd)
    flat = assert_user_error(proc, "Could not find the fashion_mnist IDX files", "Downloading is off")
    assert "is not on this machine" not in flat or str(target) in flat
    assert not (tmp_path / "elsewhere").exists() and not (cwd / "data").exists()
    assert list(cwd.iterdir()) == []  # refused before any work: not even eval's run dir is left


# ── 2. never overwrite a run ────────────────────────────────────────────────────────────────────


def test_a_second_run_into_the_same_run_dir_is_refused_and_the_first_stays_byte_identical(tmp_path):
    assert run_annkit("train", *XOR, "hydra.run.dir=myrun", cwd=tmp_path).returncode == 0
    before = tree_digest(tmp_path / "myrun")
    proc = run_annkit("train", *XOR, "trainer.epochs=2", "hydra.run.dir=myrun", cwd=tmp_path)
    flat = assert_user_error(
        proc, "myrun already holds a run (metrics.json, checkpoints/, tb/)", "Nothing was run", "trainer.overwrite=true"
    )
    assert "resume=" not in flat  # a finished run has nothing to go on with
    assert proc.returncode == 2 and tree_digest(tmp_path / "myrun") == before
    assert "Traceback" not in flat
    proc = run_annkit("train", *XOR, "trainer.epochs=2", "hydra.run.dir=myrun", "trainer.overwrite=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("myrun.old-")]
    assert len(moved) == 1 and tree_digest(moved[0]) == before  # moved aside whole, never deleted
    assert json.loads((tmp_path / "myrun" / "metrics.json").read_text())["epochs"] == 2
    assert "is now in" in proc.stderr and moved[0].name in proc.stderr


def test_a_sweep_into_a_sweep_dir_that_holds_runs_is_refused_before_any_job(tmp_path):
    job = tmp_path / "sweep" / "1"
    (job / "checkpoints").mkdir(parents=True)
    (job / "checkpoints" / "last.safetensors").write_bytes(b"a run's state")
    proc = run_annkit("train", "-m", *XOR, "model.activation=relu,tanh", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert_user_error(proc, "sweep already holds a sweep (1/checkpoints/)", "hydra.sweep.dir=<new folder>")
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["1"]
    assert (job / "checkpoints" / "last.safetensors").read_bytes() == b"a run's state"


def test_train_itself_refuses_a_run_dir_with_a_run_and_only_started_folders_pass(tmp_path, xor_run):
    with pytest.raises(AnnkitError, match="already holds a run"):
        train(composed(XOR), xor_run, console=quiet(), overrides=XOR)
    started = tmp_path / "started"
    (started / ".hydra").mkdir(parents=True)
    (started / "train.log").write_text("")
    assert protect(started, task="train", sweep=False, overwrite=False, overwrite_key="trainer.overwrite") is None


# ── 3. portable runs: another working directory, a moved CSV ────────────────────────────────────


def write_table(path: Path, seed: int = 0, n: int = 80) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    labels = np.where(x[:, 0] + x[:, 1] > 0, "up", "down")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a,b,label\n" + "".join(f"{r[0]:.4f},{r[1]:.4f},{c}\n" for r, c in zip(x, labels)))
    return path


CSV_RUN = [
    "dataset=csv",
    "dataset.path=data/t.csv",
    "dataset.target=label",
    "model.hidden=[8]",
    "scheduler=none",
    "trainer.batch_size=16",
    "trainer.device=cpu",
    "logger.images_every=0",
]


def test_a_csv_run_resumes_and_evaluates_from_another_folder_and_from_a_moved_file(tmp_path, monkeypatch):
    home, other = tmp_path / "home", tmp_path / "other"
    write_table(home / "data" / "t.csv")
    other.mkdir()
    assert run_annkit("train", *CSV_RUN, "trainer.epochs=1", "hydra.run.dir=run", cwd=home).returncode == 0
    run = home / "run"
    meta = load_checkpoint(run / "checkpoints" / "last.safetensors").meta
    table = str(home / "data" / "t.csv")
    assert (
        meta["config"]["dataset"]["path"] == table and f"dataset.path={table}" in meta["overrides"]
    )  # stored absolute
    assert meta["data"]["files"]["dataset.path"]["sha256"] == hashlib.sha256(Path(table).read_bytes()).hexdigest()
    # from another folder: the stored absolute path finds the file
    proc = run_annkit("train", f"resume={run}", "trainer.epochs=2", cwd=other)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_annkit("eval", f"checkpoint={run}/checkpoints/best.safetensors", cwd=other)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scored = json.loads(next((other / "outputs" / "eval" / "runs").iterdir()).joinpath("metrics.json").read_text())
    assert scored["test"]["accuracy"] == json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    # the file moves: the same bytes elsewhere are accepted by resume and by eval (dataset.path=, no '+')
    moved = other / "moved.csv"
    shutil.move(table, moved)
    proc = run_annkit("train", f"resume={run}", "trainer.epochs=3", "dataset.path=moved.csv", cwd=other)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_annkit("eval", f"checkpoint={run}/checkpoints/best.safetensors", "dataset.path=moved.csv", cwd=other)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # another file under that name: refused by resume (through the cli) and eval (in-process), both hashes named
    write_table(other / "changed.csv", seed=1)
    hashes = (
        meta["data"]["files"]["dataset.path"]["sha256"],
        hashlib.sha256((other / "changed.csv").read_bytes()).hexdigest(),
    )
    assert_user_error(
        run_annkit("train", f"resume={run}", "trainer.epochs=4", "dataset.path=changed.csv", cwd=other),
        "dataset.path=changed.csv is not the file the run read",
        *hashes,
    )
    monkeypatch.chdir(other)
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        cfg = compose(
            config_name="eval",
            overrides=evaluate_argv([f"checkpoint={run}/checkpoints/best.safetensors", "dataset.path=changed.csv"]),
        )
    with pytest.raises(AnnkitError, match=re.escape("dataset.path=changed.csv is not the file the run read")) as err:
        evaluate_checkpoint(cfg, tmp_path / "eval", console=quiet())
    assert all(h in str(err.value) for h in hashes)


# ── 4, 5. refused before any work ──────────────────────────────────────────────────────────────


def test_a_single_class_csv_target_is_refused_before_training(tmp_path):
    (tmp_path / "one.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 3},same\n" for i in range(30)))
    proc = run_annkit(
        "train", "dataset=csv", "dataset.path=one.csv", "dataset.target=label", "hydra.run.dir=run", cwd=tmp_path
    )
    assert_user_error(
        proc,
        "dataset.target=label of",
        "holds a single class ('same', in all 30 rows)",
        "a classifier needs at least 2 classes",
        "dataset.task=regression loss=mse",
    )
    assert proc.returncode == 2
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "tb").exists()


def test_a_model_larger_than_the_machine_is_refused_before_any_data_is_read(tmp_path):
    empty = tmp_path / "no_data_here"
    empty.mkdir()
    proc = run_annkit(
        "train", "model.hidden=[1000000,1000000]", f"dataset.root={empty}", "trainer.device=cpu", cwd=tmp_path
    )
    # P = 784·10⁶ + 10⁶ + 10⁶·10⁶ + 10⁶ + 10⁶·10 + 10 (the three Linear layers) + 2·2·10⁶ (the two batch norms)
    flat = assert_user_error(
        proc,
        "Training this model needs at least",
        "GB on cpu",
        "are available",
        "The MLP 784 → 1,000,000 → 1,000,000 → 10 has 1,000,800,000,010 parameters",
        "model.hidden=[…]",
    )
    assert "Could not find" not in flat  # the data was never looked for
    # and a checkpoint that claims such a model: refused by eval/predict before any tensor is made
    torch.manual_seed(0)
    huge = {
        "config": {
            "model": {
                "hidden": [10**6, 10**6],
                "activation": "relu",
                "norm": "none",
                "dropout": 0.0,
                "input_dropout": 0.0,
            },
            "loss": {"name": "ce"},
        },
        "data": {
            "task": "classification",
            "classes": ["a", "b"],
            "input_shape": [2],
            "output_activation": "softmax",
            "preprocessing": {"kind": "table", "features": ["x1", "x2"], "standardize": False},
        },
    }
    save_file(
        {"layers.1.weight": torch.zeros(1)},
        str(tmp_path / "huge.safetensors"),
        metadata={"annkit": json.dumps({"format": "annkit.checkpoint/2", **huge})},
    )
    with pytest.raises(AnnkitError, match=r"needs at least .* GB on cpu"):
        load_model(tmp_path / "huge.safetensors")


# ── 6. downloads and folders ───────────────────────────────────────────────────────────────────


def test_an_explicit_root_that_does_not_exist_is_an_error_and_a_failed_download_leaves_nothing(tmp_path):
    proc = run_annkit("train", "dataset=mnist", "dataset.root=/nonexistent/annkit-test", cwd=tmp_path)
    assert_user_error(proc, "dataset.root=/nonexistent/annkit-test is not a folder on this machine", "does not exist")
    assert not Path("/nonexistent").exists()
    proc = run_annkit("train", "dataset=mnist", "dataset.search=[]", cwd=tmp_path)  # offline: the download fails
    assert_user_error(proc, "Could not find the mnist IDX files, and downloading them failed")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [], left  # no ./data/MNIST/raw, no scratch folder, no run dir of a refused run


# ── 7. printed commands survive copy-paste ─────────────────────────────────────────────────────


def test_quoting_round_trips_through_hydra_and_the_shell():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for value in [
        "outputs/train/runs/2026",
        "ünï/run dir",
        "a=b,c",
        'say "hi"',
        "it's",
        "back\\slash",
        "end\\",
        "1e3",
        "true",
        "null",
        "[a]",
        "~/p",
        "",
    ]:
        line = command("train", override("resume", value))
        words = __import__("shlex").split(line)
        assert words[:2] == ["annkit", "train"] and parser.parse_overrides(words[2:])[0].value() == value, line
    assert hydra_value("plain/path-1.csv") == "plain/path-1.csv"  # no quotes where none are needed


def test_an_unquoted_path_gets_the_quoted_command_and_a_split_one_is_explained(tmp_path):
    proc = run_annkit("train", "resume=ünï/run", cwd=tmp_path)
    assert_user_error(
        proc, "Hydra's override grammar cannot read 'resume=ünï/run'", """`annkit train 'resume="ünï/run"'`"""
    )
    proc = run_annkit("train", "resume=my", "run", cwd=tmp_path)
    assert_user_error(
        proc, "the shell split a value with a space into two words", """`annkit train 'resume="my run"'`"""
    )
    assert proc.returncode == 2


def test_the_printed_resume_line_of_a_run_dir_with_a_space_and_non_ascii_letters_resumes_when_pasted(tmp_path):
    folder = "ünï/run dir"
    args = [
        "dataset=playground",
        "dataset.n=2000",
        "model.hidden=[8]",
        "scheduler=none",
        "trainer.epochs=40",
        "trainer.device=cpu",
        "logger.images_every=0",
        "logger.confusion=false",
        override("hydra.run.dir", folder),
    ]
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, **OFFLINE_ENV, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [*annkit_command(), "train", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        if line.strip().startswith("1/40 "):
            break
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    printed = next(
        line.strip() for line in out.splitlines() if line.strip().startswith("annkit train ")
    )  # its own line
    assert printed == """annkit train 'resume="ünï/run dir"'""", out
    bin_dir = str(Path(annkit_command()[0]).parent)
    pasted = subprocess.run(
        ["bash", "-c", printed],
        cwd=tmp_path,
        env={**env, "PATH": f"{bin_dir}:{env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    metrics = json.loads((tmp_path / folder / "metrics.json").read_text())
    assert metrics["epochs"] == 40 and metrics["resumed"]


# ── 8. advice that works ───────────────────────────────────────────────────────────────────────


def test_an_unknown_group_option_lists_the_options_and_guesses(tmp_path):
    proc = run_annkit("train", "optimizer=sgdd", cwd=tmp_path)
    assert_user_error(
        proc,
        'there is no optimizer option "sgdd". Did you mean "sgd"?',
        "adam, adamw, perceptron, rmsprop, sgd",
        "`annkit train optimizer=sgd`",
    )
    assert proc.returncode == 2 and not (tmp_path / "outputs").exists()


def test_predict_on_a_checkpoints_folder_points_at_the_file_inside(tmp_path, xor_run):
    proc = run_annkit("predict", f"checkpoint={xor_run / 'checkpoints'}", "input=x.csv", cwd=tmp_path)
    flat = assert_user_error(proc, f"e.g. {xor_run / 'checkpoints' / 'best.safetensors'} (this folder has one)")
    assert "checkpoints/checkpoints" not in flat


def test_a_run_that_finishes_at_chance_level_with_a_huge_loss_is_warned_about(tmp_path):
    words = [
        "dataset=xor",
        "optimizer.lr=1e6",
        "scheduler=none",
        "trainer.epochs=3",
        "trainer.device=cpu",
        "logger.images_every=0",
        "logger.confusion=false",
        "model.hidden=[16]",
    ]
    metrics = train(composed(words), tmp_path / "run", console=quiet(), overrides=words)
    text = " ".join(metrics["warnings"])
    assert "orders of magnitude above what a uniform guess scores (0.693 = ln 2)" in text
    assert "is at chance level: always answering the most frequent class scores 50.0%" in text


def test_the_epoch_table_shows_huge_numbers_in_scientific_notation_not_cut():
    from annkit.tracking import epoch_columns, format_row

    row = {
        "epoch": 1,
        "train/loss": 226288.1,
        "train/accuracy": 0.1,
        "val/loss": 5907854.0,
        "val/accuracy": 0.1,
        "val/balanced_accuracy": 0.1,
        "lr": 1e6,
        "epoch_s": 0.1,
        "samples_per_s": 100.0,
    }
    columns = epoch_columns("classification", penalty=False)
    cells = format_row(row, columns, 3, False)
    assert cells[1] == "2.3e+05" and cells[3] == "5.91e+06"
    assert all(len(cell) <= width for cell, (_, width, _, _) in zip(cells, columns))


def test_divergence_advice_follows_what_the_run_measured():
    from annkit.advice import divergence_advice, last_falling_lr

    where = {"step": 9, "lr": 0.3, "loss": float("nan")}
    rising = [(0.01, 2.0), (0.05, 1.5), (0.1, 1.2), (0.2, 1.4)]  # fell up to lr 0.1, then rose
    assert last_falling_lr(rising) == 0.1 and last_falling_lr([(1.0, 3.0), (1.0, 5.0)]) is None
    text = divergence_advice(where, rising, nan_policy="stop", overrides=["optimizer.lr=0.3", "model.hidden=[8]"])
    assert "below 0.1, the last at which the loss still fell (e.g. optimizer.lr=0.033)" in text
    assert "`annkit lr-find 'model.hidden=[8]'`" in text and "trainer.nan_policy=skip_batch" in text
    skipping = divergence_advice(where, [], nan_policy="skip_batch", overrides=[])
    assert "skip_batch" not in skipping and "the loss fell at none this run used (0.3;" in skipping


def test_a_config_folder_from_elsewhere_may_not_set_hydra_and_a_class_comes_only_from_torch_optim(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("precious")
    mine = tmp_path / "theirs" / "experiment"
    mine.mkdir(parents=True)
    (mine / "nice.yaml").write_text(
        f"# @package _global_\nhydra:\n  job_logging:\n    handlers:\n      file:\n"
        f"        filename: {sentinel}\n        mode: w\n"
    )
    proc = run_annkit("train", "--config-dir", "theirs", "experiment=nice", "dataset=xor", cwd=tmp_path)
    assert_user_error(proc, "--config-dir theirs: experiment/nice.yaml cannot be used: it sets hydra.* keys")
    (mine / "nice.yaml").write_text("# @package _global_\ndefaults:\n  - override /hydra/job_logging: none\n")
    assert_user_error(
        run_annkit("train", "--config-dir", "theirs", "experiment=nice", cwd=tmp_path),
        "its defaults list picks a Hydra config group",
    )
    assert sentinel.read_text() == "precious"
    (mine / "nice.yaml").write_text("# @package _global_\noptimizer:\n  _target_: os.system\n")
    flat = assert_user_error(
        run_annkit("train", "--config-dir", "theirs", "experiment=nice", "dataset=xor", cwd=tmp_path),
        "optimizer._target_='os.system' is not a torch.optim.optimizer.Optimizer class",
        "annkit imports no other module for a config",
    )
    assert "Traceback" not in flat
