"""The documentation: a short README whose links resolve, a MkDocs site that builds with --strict and has a
page per topic, and reference pages generated from the code that fail this suite when they are stale or
when a config key has no meaning written (issue 18)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from annkit import meanings

ROOT = Path(__file__).resolve().parents[1]
TOPICS = [  # the pages: getting started … development, plus the generated references
    "index.md",
    "getting-started.md",
    "config.md",
    "models.md",
    "losses.md",
    "data.md",
    "metrics.md",
    "lr-find.md",
    "checkpoints.md",
    "eval-predict.md",
    "tensorboard.md",
    "inside.md",
    "sweeps.md",
    "gpu.md",
    "slides.md",
    "performance.md",
    "architecture.md",
    "development.md",
    "python.md",
    "reference/config.md",
    "reference/cli.md",
    "changelog.md",
]


def reference_script():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_the_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not link.startswith("http")]
    assert len(local) >= 20
    assert [link for link in local if not (ROOT / link).exists()] == []
    linked = {link.removeprefix("docs/") for link in local if link.startswith("docs/") and link.endswith(".md")}
    assert linked >= set(TOPICS) - {"changelog.md"}
    # the two set-up commands come first, unchanged
    assert text.index("pip install -e . && annkit train") < text.index('pip install -e ".[dev]" && python -m pytest')


def test_every_topic_has_a_page_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = nav_pages(config["nav"])
    assert sorted(nav) == sorted(set(nav)), "a page is twice in the nav"
    assert set(TOPICS) <= set(nav)
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == set(nav), "every page is in the nav, and every nav entry is a page"
    assert config["theme"]["name"] == "material" and config["strict"] is True


def test_the_site_builds_strict_with_every_page(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    for page in TOPICS:
        built = "index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html"
        assert (tmp_path / "site" / built).is_file(), built
    tags = (tmp_path / "site" / "tensorboard" / "index.html").read_text()
    assert "lr_find/sweep_&lt;i&gt;/loss" in tags or "lr_find/sweep_<i>/loss" in tags


def test_the_config_reference_is_current_and_lists_every_key():
    script = reference_script()
    text = script.config_reference()
    assert text == (ROOT / "docs" / "reference" / "config.md").read_text(), (
        "docs/reference/config.md is stale: run python scripts/docs_reference.py"
    )
    # a row per key, with the schema's rule and the YAML's default: a few checked by hand
    assert (
        "| `trainer.epochs` | a whole number ≥ 0 | `30` | passes over the training split (0: train nothing, score the starting weights) |"
        in text
    )
    assert "| `optimizer.head_lr_mult` | a number > 0 |" in text
    assert "| `dataset.noise` | a number in [0.0, 0.5] | `0.0` | 0 … 0.5: TF Playground's noise slider / 100 |" in text
    assert "| `experiment=xor_tanh` |" in text and "`dataset=xor`" in text
    for key in meanings.MEANINGS:
        assert f"`{key.split('@')[0]}`" in text, key
    for task, keys in meanings.TASK_MEANINGS.items():
        section = text.split(f"## annkit {task}\n", 1)[1].split("\n## ", 1)[0]
        assert all(f"| `{key}` |" in section for key in keys)


def test_a_key_without_a_meaning_fails_the_reference(monkeypatch, capsys):
    script = reference_script()
    local = dict(meanings.MEANINGS)  # the test's own copy, one meaning removed
    del local["model.dropout"]
    monkeypatch.setattr(meanings, "MEANINGS", local)
    with pytest.raises(script.MissingMeaning, match=r"model\.dropout \(model=logistic\)"):
        script.config_reference()
    monkeypatch.setattr(sys, "argv", ["docs_reference.py", "--check"])
    assert script.main() == 1
    assert "no meaning written in src/annkit/meanings.py: model.dropout" in capsys.readouterr().out


def test_a_task_key_without_a_meaning_fails_the_reference(monkeypatch):
    script = reference_script()
    local = {task: dict(keys) for task, keys in meanings.TASK_MEANINGS.items()}
    del local["predict"]["input"]
    monkeypatch.setattr(meanings, "TASK_MEANINGS", local)
    with pytest.raises(script.MissingMeaning, match=r"input \(annkit predict\)"):
        script.config_reference()


def test_the_cli_reference_is_each_subcommands_help():
    script = reference_script()
    text = script.cli_reference()
    assert text == (ROOT / "docs" / "reference" / "cli.md").read_text(), (
        "docs/reference/cli.md is stale: run python scripts/docs_reference.py"
    )
    for name in ("train", "lr-find", "eval", "predict", "board"):
        assert f"## annkit {name}\n" in text
        assert f"annkit {name} —" in text.split(f"## annkit {name}\n", 1)[1]


def test_the_changelog_keeps_a_changelog_and_names_this_version():
    from annkit import __version__

    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "## [Unreleased]" in text and f"## [{__version__}]" in text
    for heading in re.findall(r"^### (.+)$", text, re.M):
        assert heading in {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, heading
