"""Fine-tuning: a run on classes 0–4 of Fashion-MNIST becomes a 10-class model with its first layer
frozen (loaded / fresh tensors listed, frozen weights and batch-norm statistics untouched), the
head's own lr, and the errors for checkpoints that do not fit."""

from __future__ import annotations

import json
import os
import pickle
import re

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from annkit.checkpoint import load_checkpoint, save_checkpoint
from annkit.data.images import select_classes
from annkit.errors import AnnkitError
from annkit.finetune import init_from, param_groups, resolve_freeze
from annkit.models import MLP
from annkit.tasks.learning_rate import build_scheduler
from tests.conftest import assert_user_error, run_annkit

COMMON = ["model.hidden=[64,32]", "dataset.limit_train=3000", "trainer.batch_size=128", "trainer.epochs=2"]


@pytest.fixture(scope="module")
def five_class_run(tmp_path_factory, fashion_dir):
    cwd = tmp_path_factory.mktemp("ft")
    proc = run_annkit(
        "train", *COMMON, "dataset.classes=[0,1,2,3,4]", f"dataset.root={fashion_dir}", "hydra.run.dir=src", cwd=cwd
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd, cwd / "src"


def test_a_five_class_run_becomes_a_ten_class_model_with_its_first_layer_frozen(five_class_run, fashion_dir):
    cwd, src = five_class_run
    source = json.loads((src / "metrics.json").read_text())
    assert source["names"] == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
    assert source["data"]["test"] == 5000 and len(source["test"]["confusion_matrix"]) == 5
    best = src / "checkpoints" / "best.safetensors"
    scored = run_annkit(
        "eval", f"checkpoint={best}", "hydra.run.dir=scored", cwd=cwd
    )  # the subset, rebuilt from the checkpoint
    assert scored.returncode == 0, scored.stdout + scored.stderr
    assert json.loads((cwd / "scored" / "metrics.json").read_text())["test"] == source["test"]
    proc = run_annkit(
        "train",
        *COMMON,
        f"model.init_from={best}",
        "model.freeze=[0]",
        "optimizer.head_lr_mult=5",
        f"dataset.root={fashion_dir}",
        "hydra.run.dir=tuned",
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("layers.")}
    assert "loaded" in rows["layers.1.weight"] and "loaded" in rows["layers.4.weight"]  # first and second hidden layer
    assert "5×32" in rows["layers.7.weight"] and "fresh: shape differs" in rows["layers.7.weight"]  # the new head
    assert "(frozen)" in out and "output layer lr × 5" in out
    flat = " ".join(out.split())
    assert "14 tensors loaded, 2 fresh" in flat

    tuned = load_checkpoint(cwd / "tuned" / "checkpoints" / "last.safetensors").model
    before = load_checkpoint(best).model
    frozen = [
        "layers.1.weight",
        "layers.1.bias",
        "layers.2.weight",
        "layers.2.bias",
        "layers.2.running_mean",
        "layers.2.running_var",
        "layers.2.num_batches_tracked",
    ]
    assert all(torch.equal(tuned[k], before[k]) for k in frozen)  # weights and batch-norm statistics untouched
    assert not torch.equal(tuned["layers.4.weight"], before["layers.4.weight"])  # loaded, and trained further
    assert tuned["layers.7.weight"].shape == (10, 32)

    m = json.loads((cwd / "tuned" / "metrics.json").read_text())
    frozen_params = 784 * 64 + 64 + 2 * 64
    assert m["params"] == 784 * 64 + 64 + 128 + 64 * 32 + 32 + 64 + 32 * 10 + 10
    assert m["trainable_params"] == m["params"] - frozen_params and m["frozen_layers"] == [0]
    assert m["init_from"]["path"] == str(best) and m["init_from"]["shape_mismatched"][0]["name"] == "layers.7.weight"
    new_classes = [m["test"]["recall"][name] for name in ("Sandal", "Sneaker", "Bag", "Ankle boot")]
    assert len(m["names"]) == 10 and min(new_classes) > 0.4 and m["test"]["accuracy"] > 0.6  # it learnt new classes too
    acc = EventAccumulator(str(cwd / "tuned" / "tb"))
    acc.Reload()
    assert acc.Scalars("params/trainable")[0].value == m["trainable_params"]
    assert acc.Scalars("params/frozen")[0].value == frozen_params
    assert "init_from/text_summary" in acc.Tags()["tensors"]


def test_init_from_bad_checkpoints_through_the_cli(five_class_run, tmp_path, precious):
    _cwd, src = five_class_run
    # another architecture: nothing fits
    proc = run_annkit(
        "train",
        "dataset=xor",
        "model.hidden=[8]",
        f"model.init_from={src / 'checkpoints' / 'best.safetensors'}",
        cwd=tmp_path,
    )
    assert_user_error(
        proc,
        "none of its tensors fits this model",
        "layers.1.weight 64×784 in the checkpoint vs 8×2 here",
        "MLP 784 → 64 → 32 → 5 (relu, batch norm)",
        "model.hidden=[64, 32]",
    )

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Payload()))
    proc = run_annkit("train", "dataset=xor", "model.init_from=evil.pt", cwd=tmp_path)
    assert_user_error(proc, "evil.pt is not an annkit checkpoint", "never unpickles")
    assert not (tmp_path / "PWNED").exists()
    good = (src / "checkpoints" / "best.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(good[: len(good) // 2])
    assert_user_error(run_annkit("train", "dataset=xor", "model.init_from=cut.safetensors", cwd=tmp_path), "truncated")
    assert_user_error(
        run_annkit("train", "dataset=xor", "model.init_from=gone.safetensors", cwd=tmp_path),
        "No checkpoint at gone.safetensors",
    )
    assert_user_error(
        run_annkit("train", "dataset=xor", "model.hidden=[2]", "model.freeze=[3]", cwd=tmp_path),
        "model.freeze=[3] names layer(s) [3] that this model does not have",
        "0: Linear 2→2; 1: Linear 2→2 (output)",
    )


def test_same_shapes_but_other_classes_get_a_fresh_head(tmp_path):
    torch.manual_seed(0)
    source = MLP(4, [8], 3)
    meta = {
        "config": {"model": {"hidden": [8], "activation": "relu", "norm": "none"}, "loss": {"name": "ce"}},
        "data": {"task": "classification", "classes": ["a", "b", "c"], "input_shape": [4]},
        "epoch": 2,
    }
    path = save_checkpoint(tmp_path / "c.safetensors", source.state_dict(), meta)
    same, other = MLP(4, [8], 3), MLP(4, [8], 3)
    fresh_head = other.state_dict()["layers.3.weight"].clone()
    assert init_from(same, str(path), ["a", "b", "c"], torch.device("cpu")).reset == []
    assert all(torch.equal(same.state_dict()[k], v) for k, v in source.state_dict().items())
    report = init_from(other, str(path), ["x", "y", "z"], torch.device("cpu"))
    assert report.reset == ["layers.3.weight", "layers.3.bias"] and report.match.loaded == [
        "layers.1.weight",
        "layers.1.bias",
    ]
    assert torch.equal(other.state_dict()["layers.3.weight"], fresh_head)
    assert ("layers.3.weight", "3×8", "3×8", "fresh: the classes differ") in report.rows(other.state_dict())


def test_freeze_stops_gradients_and_batch_norm_statistics_of_those_layers_only():
    torch.manual_seed(0)
    model = MLP(6, [5, 4], 3, norm="batch", activation="prelu")
    assert resolve_freeze("all_but_head", model) == [0, 1] and resolve_freeze([-1, 0], model) == [0, 2]
    model.freeze([0])
    frozen = {
        k: v.clone() for k, v in model.state_dict().items() if k.startswith(("layers.1.", "layers.2.", "layers.3."))
    }
    assert frozen.keys() == {
        "layers.1.weight",
        "layers.1.bias",
        "layers.2.weight",
        "layers.2.bias",
        "layers.2.running_mean",
        "layers.2.running_var",
        "layers.2.num_batches_tracked",
        "layers.3.weight",
    }  # Linear, BN, PReLU
    opt = torch.optim.SGD(param_groups(model, 0.1, 1.0), lr=0.1)
    model.train()
    assert not model.layers[2].training and model.layers[5].training  # frozen BN in eval mode, the next one trains
    for _ in range(3):
        loss = model(torch.randn(16, 6)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in frozen.items())
    assert model.layers[5].num_batches_tracked.item() == 3
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters() if p.requires_grad
    )
    with pytest.raises(AnnkitError, match="freezes every layer"):
        resolve_freeze([0, 1, 2], model)
    with pytest.raises(AnnkitError, match="no hidden layer"):
        resolve_freeze("all_but_head", MLP(6, [], 3))


def test_head_lr_mult_gives_the_head_its_own_group_and_one_cycle_peak():
    model = MLP(6, [5], 3)
    groups = param_groups(model, 1e-3, 10.0)
    assert [len(g["params"]) for g in groups] == [2, 2] and groups[1]["lr"] == pytest.approx(1e-2)
    assert groups[1]["params"][0] is model.layers[3].weight
    opt = torch.optim.AdamW(groups, lr=1e-3)
    sched, _ = build_scheduler(
        {"_target_": "torch.optim.lr_scheduler.OneCycleLR", "_partial_": True, "max_lr": 1e-3, "interval": "step"},
        opt,
        epochs=2,
        steps_per_epoch=5,
    )
    for _ in range(9):
        opt.step()
        sched.step()
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs[1] == pytest.approx(10 * lrs[0])
    assert param_groups(model, 1e-3, 1.0) == list(model.parameters())  # the plain case: one group, as before


def test_dataset_classes_keeps_and_renumbers_the_chosen_classes():
    arrays = {
        "train_images": np.arange(6 * 4).reshape(6, 2, 2).astype(np.uint8),
        "train_labels": np.array([0, 1, 2, 3, 2, 0]),
        "test_images": np.zeros((3, 2, 2), np.uint8),
        "test_labels": np.array([3, 3, 1]),
    }
    out, names = select_classes(arrays, ("a", "b", "c", "d"), ["c", 0], "toy")
    assert names == ("c", "a") and out["train_labels"].tolist() == [1, 0, 0, 1] and out["test_labels"].tolist() == []
    assert out["train_images"][:, 0, 0].tolist() == [0, 8, 16, 20]
    with pytest.raises(AnnkitError, match=re.escape("not a class of toy. Its classes: 0 a, 1 b, 2 c, 3 d")):
        select_classes(arrays, ("a", "b", "c", "d"), ["e", 0], "toy")
