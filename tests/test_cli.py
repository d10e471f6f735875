"""The `annkit` command as a user runs it: help, dispatch, completion and every bad input."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from annkit.data.idx import write_idx
from tests.conftest import assert_user_error, copy_fashion, run_annkit


def test_help_lists_the_subcommands(tmp_path):
    proc = run_annkit("--help", cwd=tmp_path)
    assert proc.returncode == 0 and "train" in proc.stdout and "Subcommands" in proc.stdout
    assert run_annkit(cwd=tmp_path).returncode == 2  # no subcommand: the help, and a usage error


def test_python_dash_m_is_the_same_cli(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "annkit", "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("annkit ")


def test_unknown_subcommand(tmp_path):
    assert_user_error(run_annkit("trian", cwd=tmp_path), '"trian" is not an annkit subcommand', 'Did you mean "train"?')


def test_train_help_shows_groups_and_keys(tmp_path):
    proc = run_annkit("train", "--help", cwd=tmp_path, env={"COLUMNS": "80"})
    assert proc.returncode == 0
    assert "optimizer  (optimizer=adamw; options: adam, adamw, perceptron, rmsprop, sgd)" in proc.stdout
    assert "scheduler  (scheduler=auto; options: auto, cosine, none, onecycle, step)" in proc.stdout
    # every key with its default and its meaning, from the schema
    assert "  trainer.batch_size = 256\n      training samples per step" in proc.stdout
    assert "  dataset.val_size = 5000\n      validation rows carved from the training file" in proc.stdout
    csv = run_annkit(
        "train", "dataset=csv", "--help", cwd=tmp_path, env={"COLUMNS": "80"}
    ).stdout  # the overrides pick what is listed
    assert (
        "  dataset.val_size = 0.2\n      validation rows: a number, or a share" in csv and "dataset.verify" not in csv
    )


def test_cfg_job_prints_the_composed_config_from_an_empty_dir(tmp_path):
    proc = run_annkit("train", "--cfg", "job", "optimizer=sgd", "optimizer.lr=0.1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "_target_: torch.optim.SGD" in proc.stdout and "lr: 0.1" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # --cfg creates no run dir


def test_shell_completion_completes_subcommands_and_keys(tmp_path):
    env = {"COMP_LINE": "annkit tr"}
    proc = run_annkit("-sc", "query=bash", cwd=tmp_path, env=env)
    assert proc.stdout.split() == ["train"]
    proc = run_annkit("-sc", "query=bash", cwd=tmp_path, env={"COMP_LINE": "annkit train optimizer=ad"})
    assert sorted(proc.stdout.split()) == ["optimizer=adam", "optimizer=adamw"]
    proc = run_annkit("-sc", "query=bash", cwd=tmp_path, env={"COMP_LINE": "annkit train trainer.ep"})
    assert "trainer.epochs=" in proc.stdout.split()
    proc = run_annkit("-sc", "install=bash", cwd=tmp_path)
    from tests.conftest import annkit_command

    program = "annkit" if annkit_command()[0].endswith("annkit") else "python"  # Hydra names argv[0]
    assert f"complete -o nospace -o default -F hydra_bash_completion {program}" in proc.stdout


def test_bad_activation_lists_valid_names_before_reading_any_data(tmp_path, precious):
    # The data does not exist and cannot be downloaded: the config error must come first.
    proc = run_annkit(
        "train",
        "model.activation=relux",
        f"dataset.root={tmp_path / 'nowhere'}",
        "dataset.search=[]",
        "dataset.download=false",
        cwd=tmp_path,
    )
    flat = assert_user_error(
        proc,
        'Unknown activation "relux"',
        'Did you mean "relu"?',
        "Valid names: elu, gelu, heaviside, identity, leaky_relu, linear, prelu, relu, sigmoid, sign, silu, softplus, step, swish, tanh",
    )
    assert "Could not find" not in flat


def test_full_traceback_on_request(tmp_path):
    proc = run_annkit("train", "model.activation=relux", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "AnnkitError" in proc.stderr


def test_unknown_key_is_refused_with_the_keys_that_exist(tmp_path, precious):
    proc = run_annkit("train", "trainer.epoch=3", cwd=tmp_path)
    assert_user_error(proc, "trainer.epoch=3: annkit train's config has no key trainer.epoch.",
                      'Did you mean "trainer.epochs"?', "The keys of trainer are: batch_size,", "+trainer.epoch=3")  # fmt: skip
    assert [p.name for p in (tmp_path / "outputs" / "train" / "runs").iterdir()] == ["earlier"]  # no run dir made
    proc = run_annkit("train", "-m", "trainr.epochs=1,2", cwd=tmp_path)  # a sweep's keys too, and a wrong group name
    assert_user_error(proc, 'no key trainr. Did you mean "trainer.epochs"? Its top-level keys are: dataset, logger,')
    proc = run_annkit("train", "optimizer=sgd", "optimizer.momentum=0.5", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0 and "momentum: 0.5" in proc.stdout  # a key of the group chosen on the line


def test_no_data_anywhere_and_download_impossible(tmp_path, precious):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_annkit(
        "train", f"dataset.root={empty}", "dataset.search=[data/fashion_mnist,/nonexistent/fm]", cwd=tmp_path
    )
    flat = assert_user_error(
        proc,
        "Could not find the fashion_mnist IDX files, and downloading them failed",
        f"Looked in: {empty}; {empty}/FashionMNIST/raw; {tmp_path}/data/fashion_mnist; /nonexistent/fm",
        f"The download into {empty}/FashionMNIST/raw failed",
        "apt-get install dataset-fashion-mnist",
    )
    assert "dataset.root=" in flat
    assert (
        list(empty.iterdir()) == []
    )  # the failed download left nothing behind: no FashionMNIST/raw, no scratch folder
    assert not (tmp_path / "data").exists()


def test_no_data_with_download_off(tmp_path, precious):
    proc = run_annkit("train", "dataset.search=[]", "dataset.download=false", cwd=tmp_path)
    assert_user_error(proc, "Downloading is off (dataset.download=false)", "apt-get install dataset-fashion-mnist")


def test_truncated_gz_is_a_checksum_error_naming_the_file(tmp_path, fashion_dir, precious):
    root = copy_fashion(fashion_dir, tmp_path / "fm")
    victim = root / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:2000])
    proc = run_annkit("train", f"dataset.root={root}", "dataset.search=[]", "dataset.download=false", cwd=tmp_path)
    assert_user_error(
        proc, f"{victim} is damaged (it fails the integrity check)", "truncated", "Delete it and fetch it again"
    )


def test_altered_gz_is_a_checksum_error_naming_the_file(tmp_path, fashion_dir, precious):
    root = copy_fashion(fashion_dir, tmp_path / "fm")
    victim = root / "t10k-labels-idx1-ubyte.gz"
    labels = np.frombuffer(gzip.decompress(victim.read_bytes()), np.uint8, offset=8).copy()
    labels[0] = (labels[0] + 1) % 10  # one wrong label, still a valid gzip of a valid IDX file
    write_idx(victim, labels)
    proc = run_annkit("train", f"dataset.root={root}", "dataset.search=[]", "dataset.download=false", cwd=tmp_path)
    assert_user_error(proc, f"Checksum mismatch for {victim}", "15d484375f8d13e6eb1aabb0c3f46965")


def test_byte_flipped_gz_names_the_file(tmp_path, fashion_dir, precious):
    root = copy_fashion(fashion_dir, tmp_path / "fm")
    victim = root / "train-labels-idx1-ubyte.gz"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x55
    victim.write_bytes(bytes(data))
    proc = run_annkit("train", f"dataset.root={root}", "dataset.search=[]", "dataset.download=false", cwd=tmp_path)
    assert_user_error(proc, str(victim))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the error path only exists without a GPU")
def test_missing_cuda_is_a_clear_error(tmp_path):
    proc = run_annkit("train", "trainer.device=cuda", cwd=tmp_path)
    assert_user_error(proc, "trainer.device=cuda asks for a CUDA GPU", "Use trainer.device=auto")


def test_wheel_in_a_fresh_venv_runs_from_an_empty_dir(tmp_path):
    """A wheel built from a clean copy of the project, installed (not editable) into a fresh venv,
    composes its config from an empty folder through the installed `annkit` console script, and
    `annkit.train` from a fresh `python -c` there writes a run dir and returns its metrics."""
    import site

    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    local = {
        ".git",
        ".venv",
        "build",
        "dist",
        "outputs",
        "data",
        ".whl",
        ".pytest_cache",
    }  # this checkout's, not the project's

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == repo
        return {n for n in names if (top and n in local) or n == "__pycache__" or n.endswith(".egg-info")}

    shutil.copytree(repo, src, ignore=ignore)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next((tmp_path / "dist").glob("annkit-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    venv_site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The heavy dependencies (torch, …) come from this environment's site-packages. Python does not
    # process .pth files in a folder added this way, so this environment's editable install of
    # annkit stays inactive: annkit can only come from the wheel.
    # PYTHONPATH entries (if any) go after the venv's own site-packages, where the wheel lands.
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    Path(venv_site, "deps.pth").write_text("\n".join([*site.getsitepackages(), *inherited]) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True, env=env)
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [str(venv / "bin" / "annkit"), "train", "--cfg", "job"], cwd=empty, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "name: fashion_mnist" in proc.stdout and "_target_: torch.optim.AdamW" in proc.stdout
    where = subprocess.run(
        [str(py), "-c", "import annkit; print(annkit.__file__)"], capture_output=True, text=True, env=env
    ).stdout
    assert where.startswith(venv_site), where  # the wheel's copy, not the source tree
    assert list(empty.iterdir()) == []
    code = (
        "import annkit; run = annkit.train('dataset=xor', 'trainer.epochs=3', 'trainer.device=cpu', progress=False); "
        "print(run.run_dir, run.metrics['epochs'], annkit.__file__)"
    )
    proc = subprocess.run([str(py), "-c", code], cwd=empty, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    run_dir, epochs, module = proc.stdout.split()
    assert epochs == "3" and module.startswith(venv_site)
    (written,) = (empty / "outputs" / "train" / "runs").iterdir()
    assert Path(run_dir) == written and (written / "metrics.json").is_file()


def test_ctrl_c_exits_130_without_a_traceback_and_keeps_the_checkpoint(tmp_path, fashion_dir):
    import signal

    from annkit.checkpoint import load_checkpoint
    from tests.conftest import OFFLINE_ENV, annkit_command

    env = {**os.environ, **OFFLINE_ENV, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*annkit_command(), "train", "dataset.limit_train=1000", "trainer.epochs=500", f"dataset.root={fashion_dir}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = threading.Timer(120, proc.kill)  # never hang CI if the row does not come
    deadline.start()
    try:
        for line in proc.stdout:  # wait for the first epoch row
            if "1/500" in line:
                break
        proc.send_signal(signal.SIGINT)
    finally:
        deadline.cancel()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "interrupted" in err
    (run,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    ckpt = load_checkpoint(run / "checkpoints" / "last.safetensors")
    _, meta = ckpt.model, ckpt.meta
    assert meta["epoch"] >= 1
