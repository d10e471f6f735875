"""trainer.compile=true: the training steps go through torch.compile (inductor, also on CPU) and
train the same network as the eager steps."""

from __future__ import annotations

import json

import torch

from annkit.checkpoint import load_checkpoint
from tests.conftest import run_annkit

RUN = ["train", "experiment=spiral_activations", "dataset.n=240", "trainer.epochs=2", "trainer.batch_size=12"]


def test_compiled_steps_train_the_same_weights_as_eager_ones(tmp_path):
    compiled = run_annkit(*RUN, "trainer.compile=true", "hydra.run.dir=compiled", cwd=tmp_path, timeout=600)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    eager = run_annkit(*RUN, "hydra.run.dir=eager", cwd=tmp_path)
    assert eager.returncode == 0, eager.stdout + eager.stderr
    assert "torch.compile" in compiled.stdout and "torch.compile" not in eager.stdout
    a = load_checkpoint(tmp_path / "compiled" / "checkpoints" / "last.safetensors").model
    b = load_checkpoint(tmp_path / "eager" / "checkpoints" / "last.safetensors").model
    assert a.keys() == b.keys()  # the checkpoint holds the plain model's names, not torch.compile's _orig_mod.
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name  # fused kernels round a little differently
    m = json.loads((tmp_path / "compiled" / "metrics.json").read_text())
    assert m["compiled"] is True and json.loads((tmp_path / "eager" / "metrics.json").read_text())["compiled"] is False


def test_fused_optimizers_on_cuda_only_and_only_when_unset():
    from annkit.tasks.build import fused_on_cuda

    adamw = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3}
    assert fused_on_cuda(adamw, torch.device("cuda"))["fused"] is True
    assert "fused" not in fused_on_cuda(adamw, torch.device("cpu"))  # CPU keeps the default (foreach) kernels
    assert (
        fused_on_cuda({**adamw, "fused": False}, torch.device("cuda"))["fused"] is False
    )  # the config's choice stands
    rprop = {"_target_": "torch.optim.Rprop", "_partial_": True, "lr": 1e-3}
    assert "fused" not in fused_on_cuda(rprop, torch.device("cuda"))  # no fused implementation: unchanged
