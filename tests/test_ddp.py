"""DistributedDataParallel through torchrun, on CPU (gloo): two real processes, one run dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from annkit.checkpoint import load_checkpoint
from annkit.data import Batcher
from annkit.distributed import World
from annkit.errors import AnnkitError
from annkit.tasks.build import check_distributed
from tests.conftest import OFFLINE_ENV, annkit_command, run_annkit

# the playground's spiral, no dropout, batch norm or augmentation: the only randomness is the shuffle
RUN = ["train", "experiment=spiral_activations", "dataset.n=240", "trainer.epochs=2", "trainer.batch_size=12"]


def rank_logs(cwd: Path) -> Path:
    return cwd.parent / f"{cwd.name}-ranks"


def torchrun(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Two ranks of ``annkit <args>``; each rank's stdout is also kept on its own (torchrun's --tee, in
    :func:`rank_logs` of ``cwd``: beside it, not in it), so a test can tell which rank printed what."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               f"--log-dir={rank_logs(cwd)}", "--tee=3", "-m", "annkit", *args]  # fmt: skip
    full_env = {**os.environ, **OFFLINE_ENV, "COLUMNS": "200", **env}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("ddp")
    scratch = cwd / "tmp"
    scratch.mkdir()
    proc = torchrun(*RUN, cwd=cwd, env={"TMPDIR": str(scratch)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd, scratch, proc


def test_two_processes_end_with_identical_weights_and_one_metrics_json(two_ranks):
    cwd, scratch, proc = two_ranks
    (run,) = (cwd / "outputs" / "train" / "runs").iterdir()  # rank 1 made no run dir of its own
    assert [p.name for p in (cwd / "outputs").iterdir()] == ["train"]
    m = json.loads((run / "metrics.json").read_text())
    assert m["ddp"] == {
        "world_size": 2,
        "backend": "gloo",
        "global_batch": 12,
        "per_rank_batch": 6,
        "max_weight_difference": 0.0,
    }  # rank 1's weights compared with rank 0's, every tensor
    assert m["epochs"] == 2 and m["samples_per_s"] > 0
    assert not [
        p for p in scratch.iterdir() if p.name.startswith("annkit-rank")
    ]  # rank 1's throw-away Hydra dir is gone
    assert proc.stdout.count("╭─ result") == 1  # only rank 0 prints
    own = {int(f.parent.name): f.read_text() for f in rank_logs(cwd).rglob("stdout.log")}
    assert sorted(own) == [0, 1] and own[0].count("╭─ result") == 1 and "╭─ result" not in own[1]
    assert "data" in own[0] and own[1].strip() == ""  # rank 1 ran, and printed nothing at all
    assert "ddp" in proc.stdout and "global batch 12 = 2 × 6 per rank" in " ".join(proc.stdout.split())


def test_two_processes_train_the_same_network_as_one(two_ranks, tmp_path):
    """Rank r takes positions r, r + 2, … of the shared permutation, in batches of 6: step k's two
    half-batches together are one process's batch k, and DDP averages their gradients."""
    cwd, _, _ = two_ranks
    (run,) = (cwd / "outputs" / "train" / "runs").iterdir()
    single = run_annkit(*RUN, "hydra.run.dir=single", cwd=tmp_path)
    assert single.returncode == 0, single.stdout + single.stderr
    ddp = load_checkpoint(run / "checkpoints" / "last.safetensors").model
    one = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.safetensors").model
    assert ddp.keys() == one.keys()
    for name in one:
        assert torch.allclose(ddp[name], one[name], atol=1e-5), name  # up to the order of float sums
    history = json.loads((run / "metrics.json").read_text())["history"]
    alone = json.loads((tmp_path / "single" / "metrics.json").read_text())["history"]
    assert [r["train/loss"] for r in history] == pytest.approx([r["train/loss"] for r in alone], rel=1e-5)
    assert [r["val/accuracy"] for r in history] == [r["val/accuracy"] for r in alone]


def test_shards_are_disjoint_and_together_make_one_process_batches():
    x = torch.arange(23)
    order = torch.randperm(23, generator=torch.Generator().manual_seed(5))
    single = Batcher(x, x, 6, shuffle=True, generator=torch.Generator().manual_seed(5))
    shards = [
        Batcher(x, x, 3, shuffle=True, generator=torch.Generator().manual_seed(5), shard=(r, 2)) for r in range(2)
    ]
    assert [len(s) for s in shards] == [4, 4]  # 23 // 2 = 11 samples each: 3 + 3 + 3 + 2
    perms = [s.permutation() for s in shards]
    assert torch.equal(single.permutation(), order)
    assert set(perms[0].tolist()).isdisjoint(perms[1].tolist()) and len(perms[0]) == len(perms[1]) == 11
    batches = [[xb.tolist() for xb, _, _ in s.epoch(p)] for s, p in zip(shards, perms)]
    for k in range(3):  # the full batches: rank 0's and rank 1's halves are one process's batch k
        assert sorted(batches[0][k] + batches[1][k]) == sorted(order[6 * k : 6 * k + 6].tolist())


def test_what_a_torchrun_run_refuses():
    world = World(rank=0, size=2, local_rank=0, local_size=2)
    base = {"resume": None, "optimizer": {"lr": 0.01}, "trainer": {"nan_policy": "stop", "batch_size": 12}}
    check_distributed(base, world)
    cases = [
        ({"resume": "outputs/x"}, "resume="),
        ({"optimizer": {"lr": "auto"}}, "optimizer.lr=auto"),
        ({"trainer": {"nan_policy": "skip_batch", "batch_size": 12}}, "skip_batch"),
        ({"trainer": {"nan_policy": "stop", "batch_size": 13}}, "must be a multiple of 2"),
    ]
    for change, needle in cases:
        with pytest.raises(AnnkitError, match=needle.replace("=", "=").replace(".", r"\.")):
            check_distributed({**base, **change}, world)


def test_a_refused_setting_stops_both_ranks_with_its_message(tmp_path):
    proc = torchrun(*RUN, "trainer.batch_size=13", cwd=tmp_path, env={})
    assert proc.returncode != 0
    out = " ".join((proc.stdout + proc.stderr).split())
    assert "trainer.batch_size=13 is the global batch" in out
    assert (
        "annkit/" not in out.split("trainer.batch_size=13", 1)[0]
    )  # no annkit traceback (torchrun adds its own summary)
    assert "File " not in proc.stdout
    assert list(tmp_path.iterdir()) == []  # refused before any work: rank 0's run dir removed; rank 1 made none


def test_annkit_command_is_the_console_script():  # torchrun runs `-m annkit`, the same entry point
    assert annkit_command()[-1].endswith("annkit")


def test_lr_find_refuses_to_run_under_torchrun(tmp_path):
    proc = run_annkit("lr-find", *RUN[1:], cwd=tmp_path, env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    flat = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2 and "annkit lr-find runs in one process" in flat and "Traceback" not in flat
