"""Checkpoints: exact round trip, best vs last, atomic replacement, and files that are not checkpoints."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from annkit.checkpoint import CheckpointHook, load_checkpoint, save_checkpoint
from annkit.errors import AnnkitError
from annkit.models import MLP


def test_round_trip_is_exact(tmp_path):
    model = MLP(784, [16], 10, norm="batch")
    model(torch.randn(4, 784))  # non-trivial BN running statistics
    path = save_checkpoint(tmp_path / "c.safetensors", model.state_dict(), {"epoch": 3, "config": {"a": [1, 2]}})
    ckpt = load_checkpoint(path)
    state, meta = ckpt.model, ckpt.meta
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert meta["epoch"] == 3 and meta["config"] == {"a": [1, 2]} and meta["format"] == "annkit.checkpoint/2"


def test_best_is_only_rewritten_on_improvement(tmp_path):
    model = torch.nn.Linear(2, 2)
    hook = CheckpointHook(tmp_path, model, {"config": {}})
    for epoch, is_best in ((1, True), (2, False)):
        with torch.no_grad():
            model.weight.fill_(epoch)
        hook.on_epoch_end({"epoch": epoch, "step": 10 * epoch, "val/loss": 1.0}, is_best=is_best)
    ckpt = load_checkpoint(tmp_path / "best.safetensors")
    best, best_meta = ckpt.model, ckpt.meta
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    last, last_meta = ckpt.model, ckpt.meta
    assert (best_meta["epoch"], last_meta["epoch"]) == (1, 2)
    assert best["weight"].eq(1).all() and last["weight"].eq(2).all()
    assert last_meta["step"] == 20


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.safetensors", {"w": torch.ones(3)}, {"epoch": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.zeros(3)}, {"epoch": 2})
    monkeypatch.undo()
    ckpt = load_checkpoint(path)
    state, meta = ckpt.model, ckpt.meta
    assert meta["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temporary file left behind


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_is_refused_and_its_payload_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"w": Payload()}))
    with pytest.raises(AnnkitError, match="never unpickles"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_and_missing_checkpoints(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(1000)}, {"epoch": 1})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(AnnkitError, match="not a readable safetensors file"):
        load_checkpoint(path)
    with pytest.raises(AnnkitError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "nope.safetensors")
