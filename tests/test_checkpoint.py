"""Checkpoints: exact round trips (weights and training state), best vs last vs kept copies, atomic
replacement under a killed writer or a failed rename, and files that are not checkpoints."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from annkit.checkpoint import Checkpointer, decode, encode, load_checkpoint, load_model, save_checkpoint
from annkit.errors import AnnkitError
from annkit.fit_state import FitState
from annkit.models import MLP
from annkit.runtime import rng_state, set_rng_state


def test_round_trip_is_exact(tmp_path):
    model = MLP(784, [16], 10, norm="batch")
    model(torch.randn(4, 784))  # non-trivial BN running statistics
    path = save_checkpoint(tmp_path / "c.safetensors", model.state_dict(), {"epoch": 3, "config": {"a": [1, 2]}})
    ckpt = load_checkpoint(path)
    assert ckpt.model.keys() == model.state_dict().keys()
    assert all(torch.equal(ckpt.model[k], v) for k, v in model.state_dict().items())
    assert (
        ckpt.meta["epoch"] == 3
        and ckpt.meta["config"] == {"a": [1, 2]}
        and ckpt.meta["format"] == "annkit.checkpoint/2"
    )
    assert not ckpt.has_state and ckpt.state is None


def test_encode_keeps_int_keys_tuples_as_lists_non_finite_floats_and_tensors():
    tree = {
        "state": {0: {"step": torch.tensor(3.0), "buf": torch.arange(4.0)}, 7: {"m": None}},
        "groups": [{"betas": (0.9, 0.999), "lr": 1e-3, "params": [0, 7]}],
        "best": None,
        "loss": math.inf,
        "nan": math.nan,
        "np": np.arange(3, dtype=np.int64),
        "flag": True,
    }
    tensors: dict[str, torch.Tensor] = {}
    data = json.loads(json.dumps(encode(tree, tensors), allow_nan=False))  # strict JSON
    back = decode(data, tensors)
    assert list(back["state"]) == [0, 7] and torch.equal(back["state"][0]["buf"], torch.arange(4.0))
    assert back["groups"][0]["betas"] == [0.9, 0.999] and back["groups"][0]["params"] == [0, 7]
    assert back["loss"] == math.inf and math.isnan(back["nan"]) and back["np"] == [0, 1, 2] and back["flag"] is True
    assert set(tensors) == {"state/state/0/step/", "state/state/0/buf/"}
    with pytest.raises(TypeError, match="cannot store a function"):
        encode({"f": lambda: 0}, {})


def test_training_state_round_trip_restores_optimizer_scheduler_and_every_random_stream(tmp_path):
    torch.manual_seed(0)
    model = MLP(4, [8], 3, norm="batch", dropout=0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=20)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x[torch.randperm(16, generator=gen)]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    for _ in range(3):
        step()
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_state([gen])}
    path = save_checkpoint(tmp_path / "last.safetensors", model.state_dict(), {"epoch": 0}, state)
    for _ in range(4):  # the run goes on: this is what the resumed run must reproduce
        step()
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    ckpt = load_checkpoint(path, state=True)
    assert ckpt.has_state
    torch.manual_seed(123)  # a new process: other weights, other random state
    model2 = MLP(4, [8], 3, norm="batch", dropout=0.5)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2, fused=True)
    sched2 = torch.optim.lr_scheduler.OneCycleLR(opt2, max_lr=1e-2, total_steps=20)
    gen2 = torch.Generator().manual_seed(99)
    model2.load_state_dict(ckpt.model)
    opt2.load_state_dict(ckpt.state["optimizer"])
    sched2.load_state_dict(ckpt.state["scheduler"])
    set_rng_state(ckpt.state["rng"], [gen2])
    model, opt, sched, gen = model2, opt2, sched2, gen2
    for _ in range(4):
        step()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())


def test_checkpointer_writes_best_weights_only_last_with_state_and_keeps_k(tmp_path):
    model = torch.nn.Linear(2, 2)
    progress = FitState()
    hook = Checkpointer(tmp_path, model, {"config": {}}, lambda: {"fit": progress.tree()}, progress, keep_last=2)
    for epoch, is_best in ((1, True), (2, False), (3, False)):
        with torch.no_grad():
            model.weight.fill_(epoch)
        progress.epoch, progress.step = epoch, 10 * epoch
        row = {"epoch": epoch, "step": 10 * epoch, "val/loss": 1.0}
        progress.history.append(row)
        hook.on_epoch_end(row, is_best=is_best)
    best, last = (
        load_checkpoint(tmp_path / "best.safetensors", state=True),
        load_checkpoint(tmp_path / "last.safetensors", state=True),
    )
    assert (best.meta["epoch"], last.meta["epoch"]) == (1, 3) and last.meta["step"] == 30
    assert best.model["weight"].eq(1).all() and last.model["weight"].eq(3).all()
    assert not best.has_state and last.state["fit"]["step"] == 30
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000020.safetensors", "step-00000030.safetensors"]


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.safetensors", {"w": torch.ones(3)}, {"epoch": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.zeros(3)}, {"epoch": 2})
    monkeypatch.undo()
    ckpt = load_checkpoint(path)
    assert ckpt.meta["epoch"] == 1 and torch.equal(ckpt.model["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temporary file left behind


WRITER = textwrap.dedent("""
    import sys, torch
    from annkit.checkpoint import save_checkpoint
    path = sys.argv[1]
    big = torch.zeros(8_000_000)  # 32 MB: each write takes a while
    for i in range(1, 10_000):
        big[0] = i
        save_checkpoint(path, {"w": big}, {"epoch": i})
        if i == 1:
            print("first", flush=True)
""")


def test_a_writer_killed_mid_write_leaves_a_whole_checkpoint(tmp_path):
    """SIGKILL (no cleanup at all) while the writer is busy rewriting the file: what is on disk
    under the checkpoint's name is always one complete version."""
    path = tmp_path / "last.safetensors"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "first"
    for _ in range(3):  # let it get into the next writes
        load_checkpoint(path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = load_checkpoint(path)
    assert ckpt.meta["epoch"] >= 1 and ckpt.model["w"][0].item() == ckpt.meta["epoch"]  # weights and meta of one write


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_is_refused_and_its_payload_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("evil.safetensors", "evil.pt"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps({"w": Payload()}))
        with pytest.raises(AnnkitError, match="never unpickles"):
            load_checkpoint(path)
        with pytest.raises(AnnkitError, match="never unpickles"):
            load_model(path)
    torch.save({"w": Payload()}, tmp_path / "evil.pth")  # torch's zip format
    with pytest.raises(AnnkitError, match="never unpickles"):
        load_checkpoint(tmp_path / "evil.pth")
    assert not (tmp_path / "PWNED").exists()


def test_truncated_missing_and_foreign_checkpoints(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(1000)}, {"epoch": 1})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(AnnkitError, match="truncated"):
        load_checkpoint(path)
    with pytest.raises(AnnkitError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, tmp_path / "other.safetensors")
    with pytest.raises(AnnkitError, match="another tool wrote it"):
        load_checkpoint(tmp_path / "other.safetensors")
    with pytest.raises(AnnkitError, match="is a folder"):
        load_checkpoint(tmp_path)
