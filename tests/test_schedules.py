"""Schedulers built from config: annkit fills their length, and refuses ones that cannot run."""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_module

from annkit.config import validate
from annkit.errors import AnnkitError
from annkit.tasks.learning_rate import build_scheduler
from tests.conftest import assert_user_error, run_annkit


def scheduler_for(*overrides: str, epochs: int, steps: int):
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        resolved = validate(compose(config_name="train", overrides=list(overrides)))
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=resolved["optimizer"]["lr"])
    sched, interval = build_scheduler(resolved["scheduler"], opt, epochs=epochs, steps_per_epoch=steps)
    return opt, sched, interval, resolved


def lrs(opt, sched, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_onecycle_peaks_at_optimizer_lr_and_ends_at_its_floor():
    opt, sched, interval, cfg = scheduler_for("optimizer=sgd", "optimizer.lr=0.1", epochs=4, steps=25)
    assert interval == "step" and sched.total_steps == 100
    seen = lrs(opt, sched, 100)
    s = cfg["scheduler"]
    assert seen[0] == pytest.approx(0.1 / s["div_factor"])  # starts at max_lr / div_factor
    assert (
        max(seen) == pytest.approx(0.1, rel=1e-3) and seen.index(max(seen)) == 24
    )  # peak after pct_start·100 − 1 steps
    assert seen[-1] == pytest.approx(0.1 / (s["div_factor"] * s["final_div_factor"]), rel=1e-2)


def test_cosine_spans_the_whole_run():
    opt, sched, _interval, _ = scheduler_for(
        "scheduler=cosine", "optimizer=sgd", "optimizer.lr=1.0", epochs=2, steps=10
    )
    assert sched.T_max == 20
    seen = lrs(opt, sched, 20)
    assert seen[0] == 1.0 and seen[10] == pytest.approx(0.5)  # halfway: (1 + cos(π/2))/2


def test_step_decay_is_per_epoch():
    opt, sched, interval, _ = scheduler_for(
        "scheduler=step", "optimizer=sgd", "scheduler.step_size=2", "scheduler.gamma=0.1", epochs=6, steps=50
    )
    assert interval == "epoch"
    assert lrs(opt, sched, 5) == pytest.approx([0.05, 0.05, 0.005, 0.005, 0.0005])  # sgd lr 0.05, ×0.1 every 2 epochs


def test_no_scheduler():
    _, sched, interval, _ = scheduler_for("scheduler=none", epochs=1, steps=1)
    assert sched is None and interval == "step"


def test_onecycle_too_short_to_warm_up_is_explained_and_auto_trains_at_a_constant_lr():
    with pytest.raises(AnnkitError, match=r"pct_start 0.25 × 4 steps = 1, and it needs at least 2"):
        scheduler_for("scheduler=onecycle", epochs=1, steps=4)
    _, sched, _, _ = scheduler_for(epochs=1, steps=4)  # the default, scheduler=auto: too short, so no schedule
    assert sched is None
    _, sched, _, resolved = scheduler_for(epochs=1, steps=8)  # 0.25 × 8 = 2 steps of warm-up: the one-cycle
    assert (
        isinstance(sched, torch.optim.lr_scheduler.OneCycleLR) and resolved["scheduler"]["if_too_short"] == "constant"
    )


def test_quick_run_too_short_for_onecycle_says_what_to_do(tmp_path, fashion_dir):
    proc = run_annkit(
        "train",
        "scheduler=onecycle",
        "trainer.epochs=1",
        "dataset.limit_train=1000",
        f"dataset.root={fashion_dir}",
        cwd=tmp_path,
    )
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2 and "Traceback" not in out
    assert (
        "scheduler=onecycle cannot warm up over this run" in out and "scheduler=auto" in out and "scheduler=none" in out
    )
    ok = run_annkit(
        "train", "trainer.epochs=1", "dataset.limit_train=1000", f"dataset.root={fashion_dir}", cwd=tmp_path
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "constant lr (scheduler=auto: 4 steps are too few to warm up a one-cycle schedule" in " ".join(
        ok.stdout.split()
    )


def test_a_list_max_lr_is_one_peak_per_parameter_group_or_one_paragraph(tmp_path):
    """scheduler.max_lr=[…] used to end in a traceback (the header formatted it with :g). One value per group
    (with optimizer.head_lr_mult: the hidden layers, then the output layer) trains and is shown; any other length
    is refused in one paragraph."""
    common = [
        "dataset=xor",
        "model.hidden=[4]",
        "model.norm=none",
        "scheduler=onecycle",
        "trainer.epochs=4",
        "trainer.batch_size=1",
    ]
    proc = run_annkit("train", *common, "optimizer.head_lr_mult=2", "scheduler.max_lr=[0.01,0.05]",
                      "hydra.run.dir=two", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "to max_lr 0.01, 0.05" in " ".join(proc.stdout.split())
    history = json.loads((tmp_path / "two" / "metrics.json").read_text())["history"]
    assert max(row["lr"] for row in history) <= 0.01 and len(history) == 4  # lr: the first group's
    proc = run_annkit("train", *common, "scheduler.max_lr=[0.01,0.05]", "hydra.run.dir=one", cwd=tmp_path)
    assert_user_error(proc, "scheduler.max_lr=[0.01, 0.05] gives 2 peak(s), but the optimizer has 1 parameter group(s)")
    assert not (tmp_path / "one").exists()
