"""JSON and YAML from anyone — a run dir handed to `annkit compare`, a weights file, a checkpoint's metadata — are
read as plain data or refused with the reason: no YAML aliases (a "billion laughs" would expand into 10⁹ values once
walked), no nesting past 64 levels (Python's parsers and walkers recurse), no traceback, and nothing else lost."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from annkit.checkpoint import META_KEY, load_checkpoint
from annkit.errors import AnnkitError
from annkit.records import MAX_DEPTH, read_data, too_deep
from annkit.sweeps import read_jobs
from tests.conftest import assert_user_error, run_annkit

LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi")
)  # 10⁹ strings once the aliases are followed


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_read_data_gives_plain_data_and_refuses_aliases_depth_size_and_bytes(tmp_path):
    saved = tmp_path / "config.yaml"  # what Hydra saves in .hydra/: read back as OmegaConf reads it
    saved.write_text(OmegaConf.to_yaml(OmegaConf.create({"model": {"hidden": [8, 8], "lr": 0.01}, "name": None})))
    assert read_data(saved) == {"model": {"hidden": [8, 8], "lr": 0.01}, "name": None}
    cases = {
        "laughs.yaml": (LAUGHS, "an alias (*name), which annkit does not read at line 2"),
        "deep.json": (nested(100_000), f"nests deeper than the {MAX_DEPTH} levels"),
        "deep.yaml": (nested(100_000), f"nests deeper than the {MAX_DEPTH} levels"),
        "just_too_deep.json": (nested(MAX_DEPTH + 1), f"nests deeper than the {MAX_DEPTH} levels"),
        "broken.json": ("{bad", "it is not valid JSON: Expecting property name"),
        "broken.yaml": ("a: [1, 2\nb: c: d\n", "it is not valid YAML: expected ',' or ']', but got ':' at line 2"),
    }
    for name, (text, reason) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError) as err:
            read_data(tmp_path / name)
        assert reason in str(err.value), (name, str(err.value))
    (tmp_path / "deepest_allowed.json").write_text(nested(MAX_DEPTH))
    assert too_deep(read_data(tmp_path / "deepest_allowed.json")) is False
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text"):
        read_data(tmp_path / "latin1.yaml")
    size = saved.stat().st_size
    with pytest.raises(ValueError, match=f"it is {size:,} bytes, more than the {size - 1:,} annkit reads"):
        read_data(saved, max_bytes=size - 1)


def test_a_checkpoint_whose_metadata_is_not_an_object_or_nests_too_deep_is_refused(tmp_path):
    for name, meta in {"list": "[1]", "deep": nested(100_000), "deep_object": '{"x": ' + nested(900) + "}"}.items():
        path = tmp_path / f"{name}.safetensors"
        save_file({"w": torch.zeros(1)}, str(path), metadata={META_KEY: meta})
        with pytest.raises(AnnkitError, match="is not an annkit checkpoint: its 'annkit' metadata is not a JSON"):
            load_checkpoint(path)
    proc = run_annkit("eval", "checkpoint=deep.safetensors", cwd=tmp_path)
    assert_user_error(proc, "deep.safetensors is not an annkit checkpoint", f"at most {MAX_DEPTH} levels")
    assert proc.returncode == 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("records")
    proc = run_annkit("train", "dataset=xor", "trainer.epochs=2", "logger.images_every=0", "hydra.run.dir=runs/ok",
                      cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd


def test_compare_shows_crafted_runs_as_unreadable_and_the_real_run_as_it_is(run):
    runs = run / "runs"
    (runs / "laughs" / ".hydra").mkdir(parents=True)
    (runs / "laughs" / ".hydra" / "config.yaml").write_text(LAUGHS)
    (runs / "broken").mkdir()
    (runs / "broken" / "metrics.json").write_text("{bad")
    (runs / "list").mkdir()
    (runs / "list" / "metrics.json").write_text("[1, 2]")
    proc = run_annkit("compare", "runs", "format=json", cwd=run, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["run"]: r for r in json.loads(proc.stdout)["runs"]}
    assert rows["runs/laughs"]["status"].startswith("unreadable .hydra/config.yaml: it is not valid YAML: an alias")
    assert rows["runs/broken"]["status"].startswith("unreadable metrics.json: it is not valid JSON")
    assert rows["runs/list"]["status"] == "unreadable metrics.json: it is not an annkit metrics record (no known task)"
    metrics = json.loads((runs / "ok" / "metrics.json").read_text())
    assert rows["runs/ok"]["status"] == "ok" and rows["runs/ok"]["val/loss"] == metrics["val"]["loss"]
    assert "Traceback" not in proc.stderr


def test_a_weights_file_of_aliases_is_refused_in_one_paragraph(tmp_path):
    (tmp_path / "w.yaml").write_text(LAUGHS)
    proc = run_annkit("train", "dataset=logic", "model=logistic", "model.weights=w.yaml", "trainer.epochs=0",
                      "loss=bce", "hydra.run.dir=run", cwd=tmp_path, timeout=60)  # fmt: skip
    assert_user_error(proc, "model.weights=", "w.yaml cannot be read: it is not valid YAML: an alias (*name)")
    assert proc.returncode == 2


def test_a_sweep_summary_skips_a_jobs_unreadable_files(tmp_path):
    for job, metrics in (("0", '{"task": "classification", "val": {"accuracy": 0.5}}'), ("1", "{bad")):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- optimizer.lr=0.{job}1\n")
        (tmp_path / job / "metrics.json").write_text(metrics)
    (tmp_path / "2" / ".hydra").mkdir(parents=True)
    (tmp_path / "2" / ".hydra" / "overrides.yaml").write_text(LAUGHS)
    jobs = read_jobs(tmp_path)
    assert [(j["job"], j["overrides"], j["metrics"]) for j in jobs] == [
        ("0", ["optimizer.lr=0.01"], {"task": "classification", "val": {"accuracy": 0.5}}),
        ("1", ["optimizer.lr=0.11"], None),
        ("2", [], None),
    ]
