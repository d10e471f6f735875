"""annkit from Python (issue 17, first part): ``annkit.compose`` and ``annkit.train`` run the CLI's recipe in this
process, give the CLI's numbers and messages, and leave the process as they found it."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import annkit
from tests.conftest import assert_user_error, run_annkit

XOR = ("dataset=xor", "model=logistic", "trainer.epochs=30", "trainer.device=cpu", "logger.images_every=0")
TIMINGS = {"wall_s", "train_s", "samples_per_s", "pid", "started_at", "finished_at", "logging_s", "threads"}


def numbers(metrics: dict) -> dict:
    """metrics.json without what depends on the clock or the process."""
    kept = {k: v for k, v in metrics.items() if k not in TIMINGS and k != "data"}
    kept["history"] = [{k: v for k, v in row.items() if not k.endswith("_s")} for row in metrics["history"]]
    return kept


def test_two_calls_in_one_process_give_the_clis_numbers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = annkit.train(*XOR, progress=False)
    second = annkit.train(*XOR, run_dir=tmp_path / "second", progress=False)
    assert first.run_dir.parent == tmp_path / "outputs" / "train" / "runs" and second.run_dir == tmp_path / "second"
    assert json.loads((first.run_dir / "metrics.json").read_text()) == json.loads(json.dumps(first.metrics))
    cli = run_annkit("train", *XOR, "hydra.run.dir=cli", cwd=tmp_path)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    from_cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert numbers(first.metrics) == numbers(second.metrics) == numbers(from_cli)
    assert first.history == first.metrics["history"] and len(first.history) == 30
    assert first.checkpoint.is_file() and first.board() == f"annkit board logdir={first.run_dir}"
    with torch.no_grad():
        probabilities = torch.softmax(first.model(torch.tensor([[0.0, 1.0], [1.0, 1.0]])), dim=1)
    assert probabilities.shape == (2, 2) and torch.allclose(probabilities.sum(1), torch.ones(2))


def test_a_bad_override_raises_annkit_error_with_the_clis_message(tmp_path):
    with pytest.raises(annkit.AnnkitError) as err:
        annkit.compose("optimizer=sgdd")
    cli = assert_user_error(run_annkit("train", "optimizer=sgdd", cwd=tmp_path), 'there is no optimizer option "sgdd"')
    assert " ".join(str(err.value).split()) in cli
    with pytest.raises(annkit.AnnkitError) as err:
        annkit.compose("trainer.epoch=3")
    cli = assert_user_error(run_annkit("train", "trainer.epoch=3", cwd=tmp_path), 'Did you mean "trainer.epochs"?')
    assert " ".join(str(err.value).split()) in cli
    with pytest.raises(annkit.AnnkitError, match=re.escape("trainer.epochs=-1 is not valid")):
        annkit.train("trainer.epochs=-1", run_dir=tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def test_after_a_call_threads_signal_handlers_and_logging_are_as_before(tmp_path):
    torch.set_num_threads(1)
    before = (torch.get_num_threads(), signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),
              list(logging.getLogger().handlers), list(logging.getLogger("annkit").handlers))  # fmt: skip
    annkit.train(*XOR, "trainer.threads=2", run_dir=tmp_path / "run", progress=False)
    after = (torch.get_num_threads(), signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),
             list(logging.getLogger().handlers), list(logging.getLogger("annkit").handlers))  # fmt: skip
    assert after == before


def test_import_annkit_imports_no_torch():
    probe = "import sys, annkit; annkit.__version__; print([m for m in ('torch', 'hydra') if m in sys.modules])"
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_the_readmes_from_python_example_runs_verbatim(tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = readme.split("## From Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.splitlines()) <= 12
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"test accuracy \d+% after 300 epochs", proc.stdout), proc.stdout
    assert "refused: optimizer=sgdd: there is no" in proc.stdout
    assert "XOR of 00 01 10 11: ['0', '1', '1', '0']" in proc.stdout
    suggestion, low, high = map(float, re.search(r"lr-find suggests (\S+) in \((\S+), (\S+)\)", proc.stdout).groups())
    assert low < suggestion < high
    (run,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    assert f"weights: {run / 'checkpoints' / 'best.safetensors'}" in proc.stdout
