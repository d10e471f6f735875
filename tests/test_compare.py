"""annkit compare: runs side by side, only the keys that differ, the metrics read back from each metrics.json."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_user_error, run_annkit

WORDS = ("dataset=xor", "trainer.epochs=2", "logger.images_every=0", "logger.health=false")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("compare")
    proc = run_annkit("train", "-m", *WORDS, "model.hidden=[2],[4]", "optimizer.lr=0.01,0.1", "hydra.sweep.dir=sweep",
                      cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd


def test_a_four_job_sweep_shows_exactly_the_swept_keys_and_each_runs_metrics(sweep):
    proc = run_annkit("compare", "sweep", "format=json", cwd=sweep)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = json.loads(proc.stdout)
    assert table["differing_keys"] == ["model.hidden", "optimizer.lr"]
    assert len(table["runs"]) == 4
    for row in table["runs"]:
        m = json.loads((sweep / row["run"] / "metrics.json").read_text())
        assert row["val/accuracy"] == m["val"]["accuracy"] and row["test/loss"] == m["test"]["loss"]
        assert row["epochs"] == 2 and row["wall_s"] == m["wall_s"] and row["status"] == "ok"
    assert {(r["model.hidden"], r["optimizer.lr"]) for r in table["runs"]} == {
        ("[2]", 0.01), ("[2]", 0.1), ("[4]", 0.01), ("[4]", 0.1)}  # fmt: skip


def test_keys_shows_only_the_differing_keys_it_names(sweep):
    table = json.loads(run_annkit("compare", "sweep", "keys=optimizer.*", "format=json", cwd=sweep).stdout)
    assert table["differing_keys"] == ["optimizer.lr"] and "model.hidden" not in table["runs"][0]
    both = json.loads(
        run_annkit("compare", "sweep", "keys=[model.hidden,optimizer.lr]", "format=json", cwd=sweep).stdout
    )
    assert both["differing_keys"] == ["model.hidden", "optimizer.lr"]
    proc = run_annkit("compare", "sweep", "keys=[trainer.*]", cwd=sweep)  # trainer.* keys are the same in every job
    assert proc.returncode == 0 and "No key that differs between these 4 runs matches keys=[trainer.*]." in proc.stdout


def test_the_table_sorts_by_a_metric_and_prints_csv_and_markdown(sweep):
    proc = run_annkit("compare", "sweep", "sort=val/loss", "format=csv", cwd=sweep)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["run", "model.hidden", "optimizer.lr"] and header[-1] == "status" and len(lines) == 5
    losses = [float(line.split(",")[header.index("val/loss")]) for line in lines[1:]]
    assert losses == sorted(losses)  # a loss: lowest first
    markdown = run_annkit("compare", "sweep", "format=markdown", cwd=sweep).stdout
    assert (
        markdown.startswith("| run | model.hidden | optimizer.lr | val loss | val acc |") and markdown.count("\n") == 6
    )
    first = json.loads((sweep / "sweep" / "0" / "metrics.json").read_text())
    row = next(line for line in markdown.splitlines() if line.startswith("| sweep/0 |")).split(" | ")
    assert row[1:5] == ["[2]", "0.01", f"{first['val']['loss']:.4f}", f"{first['val']['accuracy']:.2%}"]  # lr as given
    table = run_annkit("compare", "sweep", cwd=sweep).stdout
    assert "optimizer.lr" in table and "val acc" in table and "test acc" in table


def test_two_runs_of_one_config_say_that_no_key_differs_and_a_failed_run_is_shown(sweep):
    for name in ("a", "b"):
        assert run_annkit("train", *WORDS, f"hydra.run.dir={name}", cwd=sweep).returncode == 0
    proc = run_annkit("compare", "a", "b", cwd=sweep)
    assert proc.returncode == 0 and "no key differs" in " ".join(proc.stdout.split())
    twice = json.loads(run_annkit("compare", "a", "./a", "b", "format=json", cwd=sweep).stdout)["runs"]
    assert [r["run"] for r in twice] == ["a", "b"]  # a run named twice is one row
    (sweep / "broken" / ".hydra").mkdir(parents=True)
    (sweep / "broken" / ".hydra" / "config.yaml").write_text((sweep / "a" / ".hydra" / "config.yaml").read_text())
    rows = json.loads(run_annkit("compare", "a", "broken", "format=json", cwd=sweep).stdout)["runs"]
    assert rows[1]["status"].startswith("no metrics.json") and rows[1]["val/accuracy"] is None


def test_what_is_not_a_run_is_refused(tmp_path):
    assert_user_error(run_annkit("compare", cwd=tmp_path), "annkit compare needs runs")
    assert_user_error(run_annkit("compare", "nowhere", cwd=tmp_path), "nowhere is not a folder")
    (tmp_path / "empty").mkdir()
    assert_user_error(run_annkit("compare", "empty", cwd=tmp_path), "holds no annkit run")
    assert_user_error(run_annkit("compare", "empty", "sort=speed", cwd=tmp_path), "sort='speed' is not valid")
