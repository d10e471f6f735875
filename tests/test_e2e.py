"""`annkit train` end to end in a subprocess: real Fashion-MNIST, metrics.json, checkpoints
reloaded and re-scored, TensorBoard read back with tensorboard's own reader, and a sweep."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from annkit.checkpoint import load_checkpoint
from annkit.data import Batcher, Preprocess
from annkit.data.idx import load_idx
from annkit.head import Head
from annkit.loop import evaluate
from annkit.models import MLP
from tests.conftest import make_idx_dataset, run_annkit


def events(tb_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def hparams_of(acc: EventAccumulator) -> dict:
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    return {k: (v.string_value if v.HasField("string_value") else v.number_value) for k, v in start.hparams.items()}


def only_run_dir(cwd: Path) -> Path:
    runs = list((cwd / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 1, runs
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}", runs[0].name)
    return runs[0]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, fashion_dir):
    cwd = tmp_path_factory.mktemp("e2e")
    proc = run_annkit(
        "train",
        "dataset.limit_train=2000",
        "trainer.epochs=1",
        "trainer.log_every=2",
        f"dataset.root={fashion_dir}",
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(cwd)
    return proc, run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_metrics_json(real_run):
    _, run_dir, m = real_run
    assert set(m) >= {
        "train",
        "val",
        "test",
        "best_epoch",
        "epochs",
        "wall_s",
        "samples_per_s",
        "device",
        "torch",
        "history",
    }
    assert m["data"]["train"] == 2000 and m["data"]["val"] == 5000 and m["data"]["test"] == 10000
    assert m["epochs"] == 1 and m["best_epoch"] == 1 and len(m["history"]) == 1
    assert m["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # trainer.device=auto
    assert m["torch"] == torch.__version__
    assert 0.6 < m["test"]["accuracy"] < 1.0  # one epoch on 2,000 images: far above chance (0.1)
    assert m["val"]["accuracy"] == m["history"][0]["val/accuracy"]
    assert m["task"] == "classification" and m["names"][0] == "T-shirt/top" and m["best_metric"] == "val/accuracy"
    confusion = m["test"]["confusion_matrix"]
    assert sum(map(sum, confusion)) == 10000 and [sum(row) for row in confusion] == [1000] * 10  # the balanced test set
    assert m["test"]["recall"]["Trouser"] == confusion[1][1] / 1000
    assert m["test"]["balanced_accuracy"] == pytest.approx(m["test"]["accuracy"])  # equal class sizes: the same number
    assert m["wall_s"] > m["train_s"] > 0 and m["samples_per_s"] == pytest.approx(2000 / m["train_s"])
    assert (run_dir / "train.log").read_text().count("epoch ") >= 1
    assert (run_dir / ".hydra" / "config.yaml").exists()


def test_best_checkpoint_reproduces_the_test_score(real_run, fashion_dir):
    _, run_dir, m = real_run
    ckpt = load_checkpoint(run_dir / "checkpoints" / "best.safetensors")
    state, meta = ckpt.model, ckpt.meta
    cfg = meta["config"]["model"]
    model = MLP(784, cfg["hidden"], 10, cfg["activation"], cfg["dropout"], cfg["norm"], cfg["input_dropout"])
    device = torch.device(m["device"])  # score where and how the run did: same kernels, same numbers
    model.load_state_dict(state)
    model.to(device)
    images = torch.from_numpy(load_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")).to(device)
    labels = torch.from_numpy(load_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz")).long().to(device)
    stats = meta["data"]["preprocessing"]
    assert stats["kind"] == "image" and 0.2 < stats["mean"] < 0.4 and 0.3 < stats["std"] < 0.4  # Fashion-MNIST's pixels
    prep = Preprocess(stats["mean"], stats["std"])
    amp = torch.bfloat16 if m["precision"] == "bf16" else None
    head = Head("classification", meta["data"]["classes"], "ce", "softmax")
    score = evaluate(model, Batcher(images, labels, 2048), head=head, prepare=prep, autocast_dtype=amp)
    assert score["accuracy"] == m["test"]["accuracy"]
    assert score["loss"] == pytest.approx(m["test"]["loss"], rel=1e-5)
    assert meta["epoch"] == 1 and meta["data"]["classes"][9] == "Ankle boot"
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    last, _ = ckpt.model, ckpt.meta
    assert all(torch.equal(last[k], state[k]) for k in state)  # one epoch: last is best


def test_tensorboard_events(real_run):
    _, run_dir, m = real_run
    acc = events(run_dir / "tb")
    scalars = set(acc.Tags()["scalars"])
    assert {
        "loss/train",
        "acc/train",
        "loss/val",
        "acc/val",
        "balanced_accuracy/val",
        "recall/val/Ankle boot",
        "lr",
        "time/epoch_s",
        "throughput/samples_per_s",
        "final/test_balanced_accuracy",
    } <= scalars
    assert "loss/penalty" not in scalars  # no L1/L2 in the default recipe
    row = m["history"][0]
    for tag, key in (("loss/train", "train/loss"), ("loss/val", "val/loss"), ("acc/val", "val/accuracy")):
        (event,) = acc.Scalars(tag)
        assert event.step == 1 and event.value == pytest.approx(row[key], rel=1e-6)
    assert [e.step for e in acc.Scalars("step/loss_train")] == [2, 4, 6, 8]  # 8 steps of 256, log_every=2
    hp = hparams_of(acc)
    assert hp["model.activation"] == "relu" and hp["optimizer.lr"] == pytest.approx(2e-3)
    assert hp["model.hidden"] == "[1024, 1024]" and hp["dataset.limit_train"] == 2000
    (final,) = acc.Scalars("final/test_accuracy")
    assert final.value == pytest.approx(m["test"]["accuracy"])  # the real number, not a placeholder
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "hidden:" in text and "limit_train: 2000" in text


def test_plain_output_when_not_a_terminal(real_run):
    proc, _run_dir, _ = real_run
    assert "\x1b[" not in proc.stdout  # no colour codes or cursor movement in a pipe
    assert re.search(r"^\s+1/1\s+\d\.\d{4}", proc.stdout, re.M)  # the epoch row
    assert "result" in proc.stdout and "test" in proc.stdout and "784 → 1024 → 1024 → 10" in proc.stdout


def test_sweep_runs_each_job_into_its_own_dir_with_real_hparams(tmp_path, fashion_dir):
    proc = run_annkit(
        "train",
        "-m",
        "model.activation=relu,tanh",
        "optimizer.lr=1e-3,3e-3",
        "trainer.epochs=1",
        "dataset.limit_train=2048",
        f"dataset.root={fashion_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sweep,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    seen = set()
    for job in jobs:
        m = json.loads((job / "metrics.json").read_text())
        hp = hparams_of(events(job / "tb"))
        seen.add((hp["model.activation"], round(hp["optimizer.lr"], 6)))
        (final,) = events(job / "tb").Scalars("final/test_accuracy")
        assert final.value == pytest.approx(m["test"]["accuracy"])
    assert seen == {("relu", 1e-3), ("relu", 3e-3), ("tanh", 1e-3), ("tanh", 3e-3)}


def test_mnist_config_trains_on_synthetic_idx_files(tmp_path):
    root = make_idx_dataset(tmp_path / "mnist", n_train=800, n_test=300)
    proc = run_annkit(
        "train",
        "dataset=mnist",
        f"dataset.root={root}",
        "dataset.search=[]",
        "dataset.download=false",
        "dataset.verify=false",
        "dataset.val_size=100",
        "trainer.epochs=4",
        "trainer.batch_size=50",
        "model.hidden=[64]",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = json.loads((only_run_dir(tmp_path) / "metrics.json").read_text())
    counts = m["data"].pop("train_class_counts")
    assert m["data"] == {"name": "mnist", "source": str(root), "train": 700, "val": 100, "test": 300, "notes": []}
    assert sum(counts.values()) == 700 and list(counts) == [str(d) for d in range(10)]
    assert m["test"]["accuracy"] > 0.95  # the synthetic classes are separable


def test_same_seed_same_run_bit_for_bit(tmp_path, monkeypatch):
    """trainer.seed fixes the split, the init, the shuffling and the augmentation: two runs with the
    same seed (and the deterministic switch on) end with identical histories and identical weights."""
    import io

    # trainer.deterministic sets CUBLAS_WORKSPACE_CONFIG in this (worker) process; set here, monkeypatch takes it away
    # again after the test, so the tests that run next in this worker see the environment they started with
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    from hydra import compose, initialize_config_module
    from rich.console import Console

    from annkit.tasks.train import train

    root = make_idx_dataset(tmp_path / "mnist", n_train=400, n_test=100)
    overrides = [
        "dataset=mnist",
        f"dataset.root={root}",
        "dataset.search=[]",
        "dataset.download=false",
        "dataset.verify=false",
        "dataset.val_size=100",
        "dataset.augment.hflip=true",
        "dataset.augment.shift=2",
        "model.hidden=[32]",
        "model.dropout=0.2",
        "trainer.epochs=2",
        "trainer.batch_size=32",
        "trainer.deterministic=true",
    ]
    runs = []
    try:
        for name, seed in (("a", 3), ("b", 3), ("c", 4)):
            with initialize_config_module(config_module="annkit.configs", version_base=None):
                cfg = compose(config_name="train", overrides=[*overrides, f"trainer.seed={seed}"])
            metrics = train(cfg, tmp_path / name, console=Console(file=io.StringIO()))
            ckpt = load_checkpoint(tmp_path / name / "checkpoints" / "last.safetensors")
            state, _ = ckpt.model, ckpt.meta
            timeless = [
                {k: v for k, v in row.items() if not k.endswith("_s") and k != "samples_per_s"}
                for row in metrics["history"]
            ]
            runs.append((timeless, state))
    finally:
        torch.use_deterministic_algorithms(False)
    (hist_a, state_a), (hist_b, state_b), (_hist_c, state_c) = runs
    assert hist_a == hist_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)  # another seed, another run


def test_a_diverged_run_with_skip_batch_still_writes_valid_json(tmp_path, fashion_dir):
    proc = run_annkit(
        "train",
        "optimizer=sgd",
        "optimizer.lr=1e4",
        "scheduler=none",
        "model.norm=none",
        "model.hidden=[32]",
        "trainer.epochs=2",
        "trainer.nan_policy=skip_batch",
        "dataset.limit_train=1000",
        f"dataset.root={fashion_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    flat = " ".join(proc.stdout.split())
    assert "the run diverged" in flat
    text = (only_run_dir(tmp_path) / "metrics.json").read_text()
    m = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert m["skipped_batches"] >= 1 and m["nan_policy"] == "skip_batch" and m["val"]["loss"] is None
    assert f"{m['skipped_batches']} batches skipped (loss not finite)" in flat
