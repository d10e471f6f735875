"""Never lose a run: a run stopped anywhere (mid-epoch too) and resumed ends bit for bit where the
uninterrupted run ends — weights, history and test metrics — with TensorBoard curves that do not
double; signals save and exit 130 / 143; a NaN loss stops or skips; bad resume targets explain."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import annkit.loop
from annkit.checkpoint import load_checkpoint
from annkit.commands import override
from annkit.errors import AnnkitError, Interrupted
from annkit.tasks.train import prepare_argv, train
from tests.conftest import OFFLINE_ENV, annkit_command, assert_user_error, make_idx_dataset, run_annkit
from tests.fitting import fit_with

# Every random stream in play: shuffling, flip + shift augmentation (the run's generator), dropout
# (torch's global stream), batch norm statistics, fused AdamW and a per-step one-cycle schedule.
SMALL = [
    "model.hidden=[32]",
    "model.dropout=0.2",
    "trainer.epochs=3",
    "trainer.batch_size=32",
    "trainer.log_every=5",
    "dataset.val_size=100",
    "dataset.verify=false",
    "dataset.download=false",
    "dataset.search=[]",
    "trainer.device=cpu",
]
STEPS = 16  # 500 training images / 32


def composed(overrides: list[str]):
    with initialize_config_module(config_module="annkit.configs", version_base=None):
        return compose(config_name="train", overrides=overrides)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=150)


def timeless(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.endswith("_s") and k != "samples_per_s"} for row in history]


def weights(run: Path, name: str = "last") -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / f"{name}.safetensors").model


def assert_same_run(a: Path, b: Path, ma: dict, mb: dict) -> None:
    for name in ("last", "best"):
        wa, wb = weights(a, name), weights(b, name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    assert timeless(ma["history"]) == timeless(mb["history"])
    assert ma["test"] == mb["test"] and ma["val"] == mb["val"] and ma["best_epoch"] == mb["best_epoch"]


def tb_steps(run: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("idx") / "synthetic")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, synthetic_root):
    run = tmp_path_factory.mktemp("ref")
    metrics = train(composed([*SMALL, f"dataset.root={synthetic_root}"]), run, console=quiet())
    return run, metrics


def interrupt_at(monkeypatch, call: int, signum: int = signal.SIGINT) -> None:
    """Send the process ``signum`` during fit's training step number ``call`` (1-based), as Ctrl-C would: the
    loop reads the step's lr once per step it takes (the LR search's steps, which set the lr, are not counted)."""
    real, calls = annkit.loop.current_lr, [0]

    def lr_of_the_step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == call:
            signal.raise_signal(signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(annkit.loop, "current_lr", lr_of_the_step)


@pytest.mark.parametrize(
    "at", [5, STEPS, STEPS + 1, 2 * STEPS + 9]
)  # mid-epoch, an epoch's last batch, the first of the next, late
def test_a_run_stopped_anywhere_and_resumed_is_bit_identical(tmp_path, monkeypatch, reference, synthetic_root, at):
    ref_run, ref = reference
    overrides = [*SMALL, f"dataset.root={synthetic_root}"]
    interrupt_at(monkeypatch, at)
    with pytest.raises(Interrupted) as stopped:
        train(composed(overrides), tmp_path, console=quiet(), overrides=overrides)
    monkeypatch.undo()
    assert stopped.value.exit_code == 130 and stopped.value.command == f"annkit train resume={tmp_path}"
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.safetensors", state=True)
    assert saved.meta["step"] == at and saved.meta["epoch"] * STEPS + saved.meta["batch"] == at
    assert saved.meta["overrides"] == overrides
    assert not (tmp_path / "metrics.json").exists()

    resumed = train(
        composed([*overrides, f"resume={tmp_path}/checkpoints/last.safetensors"]), tmp_path, console=quiet()
    )
    assert_same_run(ref_run, tmp_path, ref, resumed)
    assert resumed["resumed"] == [
        {
            "from": str(tmp_path / "checkpoints" / "last.safetensors"),
            "epoch": saved.meta["epoch"],
            "batch": saved.meta["batch"],
            "step": at,
        }
    ]
    # TensorBoard: the per-step curve and the per-epoch curve, each step once, values as in the reference
    for tag in ("step/loss_train", "acc/val", "loss/train"):
        assert tb_steps(tmp_path, tag) == tb_steps(ref_run, tag), tag


def test_sigterm_saves_and_exits_143_and_a_second_resume_goes_on(tmp_path, monkeypatch, reference, synthetic_root):
    ref_run, ref = reference
    overrides = [*SMALL, f"dataset.root={synthetic_root}"]
    interrupt_at(monkeypatch, 7, signal.SIGTERM)
    with pytest.raises(Interrupted) as stopped:
        train(composed(overrides), tmp_path, console=quiet(), overrides=overrides)
    assert stopped.value.exit_code == 143 and "SIGTERM at epoch 1 of 3, batch 7 of 16 (step 7)" in str(stopped.value)
    resume = [*overrides, f"resume={tmp_path}/checkpoints/last.safetensors"]
    interrupt_at(monkeypatch, 20)  # stopped again, 20 steps into the resumed run
    with pytest.raises(Interrupted):
        train(composed(resume), tmp_path, console=quiet(), overrides=overrides)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.safetensors").meta["step"] == 27
    resumed = train(composed(resume), tmp_path, console=quiet(), overrides=overrides)
    assert_same_run(ref_run, tmp_path, ref, resumed)
    assert [r["step"] for r in resumed["resumed"]] == [7, 27]


PLAYGROUND = [
    "dataset=playground",
    "dataset.kind=circle",
    "dataset.n=1000",
    "model.hidden=[16]",
    "model.norm=none",
    "model.activation=tanh",
    "optimizer=adam",
    "trainer.epochs=3",
    "trainer.batch_size=64",
    "trainer.device=cpu",
]


def test_an_lr_auto_run_resumes_with_the_lr_it_found_without_searching_again(tmp_path, monkeypatch):
    overrides = [*PLAYGROUND, "optimizer.lr=auto"]
    reference = train(composed(overrides), tmp_path / "ref", console=quiet(), overrides=overrides)
    run = tmp_path / "cut"
    interrupt_at(monkeypatch, 12)  # counts fit's steps only
    with pytest.raises(Interrupted):
        train(composed(overrides), run, console=quiet(), overrides=overrides)
    monkeypatch.undo()
    import annkit.tasks.learning_rate as learning_rate

    monkeypatch.setattr(learning_rate, "find", lambda *a, **k: pytest.fail("the finder ran again"))
    resumed = train(composed([*overrides, f"resume={run}"]), run, console=quiet())
    untimed = [
        {k: v for k, v in json.loads(json.dumps(m["lr_find"])).items() if k != "seconds"} for m in (resumed, reference)
    ]
    assert untimed[0] == untimed[1]  # the first part's search, recorded, not redone
    assert (
        load_checkpoint(run / "checkpoints" / "last.safetensors").meta["config"]["optimizer"]["lr"]
        == reference["lr_find"]["suggestion"]
    )
    assert_same_run(tmp_path / "ref", run, reference, resumed)


def test_resuming_on_another_kind_of_device_goes_on_and_says_it_is_not_bit_exact(tmp_path, monkeypatch):
    from annkit.checkpoint import save_checkpoint

    interrupt_at(monkeypatch, 20)
    with pytest.raises(Interrupted):
        train(composed(PLAYGROUND), tmp_path, console=quiet(), overrides=PLAYGROUND)
    monkeypatch.undo()
    last = tmp_path / "checkpoints" / "last.safetensors"
    ckpt = load_checkpoint(last, state=True)
    save_checkpoint(last, ckpt.model, {**ckpt.meta, "device": "cuda"}, ckpt.state)  # as if it had run on a GPU
    resumed = train(composed([*PLAYGROUND, f"resume={tmp_path}"]), tmp_path, console=quiet())
    assert resumed["epochs"] == 3 and any("cannot carry over" in w for w in resumed["warnings"])


def test_a_checkpoint_that_cannot_be_written_stops_with_a_paragraph_and_the_old_file_whole(tmp_path, monkeypatch):
    from annkit.checkpoint import save_checkpoint, write_or_explain

    path = save_checkpoint(tmp_path / "checkpoints" / "last.safetensors", {"w": torch.ones(2)}, {"epoch": 1})

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(
        AnnkitError, match=r"No space left on device .errno 28.. The file it would replace, if any, is whole"
    ):
        write_or_explain(path, b"new")
    monkeypatch.undo()
    assert load_checkpoint(path).meta["epoch"] == 1


def test_resume_may_extend_a_constant_schedule_but_not_a_one_cycle(tmp_path, synthetic_root):
    base = [*SMALL, f"dataset.root={synthetic_root}", "trainer.epochs=2"]
    a, b = tmp_path / "a", tmp_path / "b"
    train(composed([*base, "scheduler=none", "trainer.epochs=4"]), a, console=quiet())
    train(composed([*base, "scheduler=none"]), b, console=quiet())
    (b / "metrics.json").unlink()  # as if it had stopped right after its last epoch
    longer = train(composed([*base, "scheduler=none", "trainer.epochs=4", f"resume={b}"]), b, console=quiet())
    assert longer["epochs"] == 4 and all(torch.equal(weights(a)[k], weights(b)[k]) for k in weights(a))
    train(composed(base), tmp_path / "c", console=quiet())
    with pytest.raises(AnnkitError, match="OneCycleLR schedule was laid out over 2 epochs"):
        train(composed([*base, "trainer.epochs=4", f"resume={tmp_path / 'c'}"]), tmp_path / "c", console=quiet())
    with pytest.raises(AnnkitError, match="nothing left to do"):
        train(composed([*base, f"resume={tmp_path / 'c'}"]), tmp_path / "c", console=quiet())
    early = [
        *base,
        "scheduler=none",
        "trainer.epochs=5",
        "trainer.early_stopping.patience=1",
        "trainer.early_stopping.min_delta=10",
    ]
    stopped = train(composed(early), tmp_path / "e", console=quiet())
    assert stopped["stopped_early"] and stopped["epochs"] == 2
    with pytest.raises(AnnkitError, match=r"finished 2 of 5 epochs \(it stopped early\)"):
        train(composed([*early, f"resume={tmp_path / 'e'}"]), tmp_path / "e", console=quiet())
    again = train(composed([*early, "trainer.epochs=8", f"resume={tmp_path / 'e'}"]), tmp_path / "e", console=quiet())
    assert again["epochs"] == 2 and again["test"] == stopped["test"]  # out of patience: it stays stopped


def test_resume_refuses_a_config_that_changes_the_run(tmp_path, synthetic_root, precious):
    overrides = [*SMALL, f"dataset.root={synthetic_root}", "trainer.epochs=1"]
    run = tmp_path / "outputs" / "train" / "runs" / "r"
    train(composed(overrides), run, console=quiet(), overrides=overrides)
    (run / "metrics.json").unlink()
    before = (run / "checkpoints" / "last.safetensors").read_bytes()
    with pytest.raises(AnnkitError) as err:
        train(
            composed([*overrides, "model.hidden=[64]", "optimizer.weight_decay=0.5", f"resume={run}"]),
            run,
            console=quiet(),
        )
    text = str(err.value)
    assert (
        "model.hidden: [32] in the run → [64] now" in text
        and "optimizer.weight_decay: 0.2 in the run → 0.5 now" in text
    )
    assert "model.init_from=" in text and "trainer.epochs" in text  # the way out, and what may change
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == before  # nothing lost


def test_prepare_argv_reapplies_the_runs_overrides_and_picks_its_run_dir(tmp_path, synthetic_root):
    overrides = [*SMALL, f"dataset.root={synthetic_root}", "trainer.epochs=1"]
    run = tmp_path / "run"
    train(composed(overrides), run, console=quiet(), overrides=overrides)
    argv = prepare_argv([f"resume={run}", "trainer.log_every=3", "trainer.epochs=2"])
    last = (run / "checkpoints" / "last.safetensors").resolve()
    # replaced by the new ones; dataset.download from the checkpoint is always false (nothing it says starts a download)
    kept = [o for o in overrides if not o.startswith(("trainer.epochs=", "trainer.log_every=", "dataset.download="))]
    assert argv == [
        *kept,
        "dataset.download=false",
        "trainer.log_every=3",
        "trainer.epochs=2",
        override("resume", str(last)),
        override("hydra.run.dir", str(run.resolve())),
        "hydra.output_subdir=.hydra/resume-1",
    ]
    assert prepare_argv(["trainer.epochs=2"]) == ["trainer.epochs=2"]
    with pytest.raises(AnnkitError, match="cannot be part of a sweep"):
        prepare_argv([f"resume={run}", "-m"])
    with pytest.raises(AnnkitError, match="holds weights only"):
        prepare_argv([f"resume={run}/checkpoints/best.safetensors"])
    with pytest.raises(AnnkitError, match="not an annkit run dir"):
        prepare_argv([f"resume={tmp_path}"])
    (tmp_path / "loose.safetensors").write_bytes(last.read_bytes())
    with pytest.raises(AnnkitError, match="this checkpoint is not in one"):
        prepare_argv([f"resume={tmp_path / 'loose.safetensors'}"])
    (run / "checkpoints" / "last.safetensors").write_bytes(b"\x80\x04truncated")
    with pytest.raises(AnnkitError, match="not an annkit checkpoint"):
        prepare_argv([f"resume={run}"])


# ── NaN / inf ──────────────────────────────────────────────────────────────────────────────────


def poisoned(n_batches: int, bad_batch: int, bs: int = 8):
    """Separable 2-D data whose batch ``bad_batch`` (0-based, file order) holds a NaN input."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_batches * bs, 2, generator=g)
    y = (x[:, 0] > 0).long()
    x[bad_batch * bs + 3, 1] = float("nan")
    return x, y


def test_nan_stop_pins_the_step_and_lr_and_keeps_nothing_after_it():
    from annkit.data import Batcher
    from annkit.head import Head

    x, y = poisoned(10, bad_batch=6)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)  # a distinct lr at every step
    seen = []

    class Rows(annkit.loop.Hook):
        def on_epoch_end(self, row, *, is_best):
            seen.append(row)

    result = fit_with(
        model,
        opt,
        Batcher(x, y, 8),
        Batcher(x[:8], y[:8], 8),
        head=Head("classification", ["a", "b"], "ce", "softmax"),
        epochs=3,
        prepare=lambda b, train: b,
        scheduler=sched,
        log_every=4,
        hooks=[Rows()],
    )
    assert result.diverged == {
        "step": 7,
        "epoch": 1,
        "batch": 7,
        "lr": pytest.approx(0.5 * 0.9**6),
        "loss": pytest.approx(float("nan"), nan_ok=True),
    }
    assert seen == [] and result.history == []  # no epoch row (and so no checkpoint) after the NaN


def test_skip_batch_skips_exactly_the_bad_batches_and_counts_them():
    from annkit.data import Batcher
    from annkit.head import Head

    head = Head("classification", ["a", "b"], "ce", "softmax")
    x, y = poisoned(10, bad_batch=9)  # the last batch of each epoch: dropping it leaves the other batches as they are
    runs = []
    for data, policy in (((x, y), "skip_batch"), ((x[:72], y[:72]), "stop")):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        result = fit_with(
            model,
            opt,
            Batcher(*data, 8),
            Batcher(x[:8], y[:8], 8),
            head=head,
            epochs=3,
            prepare=lambda b, train: b,
            nan_policy=policy,
            log_every=4,
        )
        runs.append((model.state_dict(), result))
    (skipped_w, skipped), (clean_w, clean) = runs
    assert skipped.skipped == 3 and clean.skipped == 0 and skipped.diverged is None
    assert all(torch.equal(skipped_w[k], clean_w[k]) for k in clean_w)
    assert [r["train/loss"] for r in skipped.history] == [r["train/loss"] for r in clean.history]
    model = torch.nn.Linear(2, 2)  # every batch bad: nothing would ever train, so it stops
    result = fit_with(
        model,
        torch.optim.SGD(model.parameters(), lr=0.5),
        Batcher(x * float("nan"), y, 8),
        Batcher(x[:8], y[:8], 8),
        head=head,
        epochs=3,
        prepare=lambda b, train: b,
        nan_policy="skip_batch",
    )
    assert result.diverged["all_skipped"] and result.skipped == 10 and result.history == []


def test_nan_stop_through_the_cli_exits_3_with_advice_and_keeps_the_last_good_checkpoint(tmp_path, fashion_dir):
    args = [
        "train",
        "optimizer=sgd",
        "optimizer.lr=1e4",
        "scheduler=none",
        "model.norm=none",
        "model.hidden=[32]",
        "trainer.epochs=2",
        "dataset.limit_train=1000",
        f"dataset.root={fashion_dir}",
        "hydra.run.dir=run",
    ]
    proc = run_annkit(*args, cwd=tmp_path)
    flat = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 3 and "Traceback" not in flat, flat
    assert "The training loss became nan at step" in flat and "with lr 1e+04" in flat
    # the loss never fell at 1e4, so no number derived from it is offered (1e+03 diverges too): lr-find with the same overrides
    for advice in (
        "the loss fell at none this run used (1e+04;",
        "`annkit lr-find optimizer=sgd scheduler=none model.norm=none "
        "'model.hidden=[32]' trainer.epochs=2 dataset.limit_train=1000",
        "trainer.grad_clip=1.0",
        "trainer.nan_policy=skip_batch",
    ):
        assert advice in flat, advice
    assert "optimizer.lr=1e+03" not in flat
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert "The training loss became nan at step 6 (epoch 2, batch 2 of 4)" in flat
    assert "run/checkpoints/last.safetensors holds the last good state (epoch 1, step 4)" in flat
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert last.meta["step"] == 4 and all(torch.isfinite(t).all() for t in last.model.values())


# ── a real `annkit train` process: SIGINT, SIGKILL, a second Ctrl-C ────────────────────────────

REAL = [
    "model.hidden=[64]",
    "trainer.epochs=3",
    "dataset.limit_train=4000",
    "trainer.batch_size=128",
    "trainer.log_every=4",
]


def start(cwd: Path, *args: str) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, **OFFLINE_ENV, "COLUMNS": "200"}
    return subprocess.Popen(
        [*annkit_command(), "train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_row(proc: subprocess.Popen, row: str) -> list[str]:
    """Read the run's output until the epoch row ``row`` (e.g. '1/3') is printed."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.strip().startswith(row):
            return lines
    raise AssertionError("".join(lines))


@pytest.fixture(scope="module")
def real_reference(tmp_path_factory, fashion_dir):
    cwd = tmp_path_factory.mktemp("real")
    proc = run_annkit("train", *REAL, f"dataset.root={fashion_dir}", "hydra.run.dir=full", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd / "full", json.loads((cwd / "full" / "metrics.json").read_text())


def test_sigint_to_a_real_train_process_then_resume_equals_the_uninterrupted_run(tmp_path, fashion_dir, real_reference):
    proc = start(tmp_path, *REAL, f"dataset.root={fashion_dir}", "hydra.run.dir=cut")
    wait_for_row(proc, "1/3")
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    flat = " ".join(out.split())
    assert proc.returncode == 130, out
    assert "interrupted: SIGINT at epoch" in flat and "Traceback" not in flat
    assert "annkit train resume=cut\n" in out  # the command on a line of its own, unwrapped
    proc = run_annkit("train", "resume=cut", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resume from cut/checkpoints/last.safetensors at" in " ".join(proc.stdout.split())
    run = tmp_path / "cut"
    assert_same_run(real_reference[0], run, real_reference[1], json.loads((run / "metrics.json").read_text()))
    assert (run / ".hydra" / "overrides.yaml").read_text().count("resume") == 0  # the original record is kept
    assert "resume=" in (run / ".hydra" / "resume-1" / "overrides.yaml").read_text()
    assert [s for s, _ in tb_steps(run, "step/loss_train")] == [
        s for s, _ in tb_steps(real_reference[0], "step/loss_train")
    ]


def test_a_killed_process_resumes_from_its_last_step_checkpoint(tmp_path, fashion_dir, real_reference):
    """A machine that dies: SIGKILL, no handler runs. With trainer.checkpoint.every_n_steps the run
    goes on from its last saved step, and still ends exactly as the uninterrupted run."""
    proc = start(
        tmp_path,
        *REAL,
        f"dataset.root={fashion_dir}",
        "trainer.checkpoint.every_n_steps=5",
        "trainer.checkpoint.keep_last=2",
        "hydra.run.dir=dead",
    )
    wait_for_row(proc, "1/3")
    proc.kill()
    proc.wait()
    run = tmp_path / "dead"
    # SIGKILL may land anywhere, also between writing last.safetensors, its step copy and pruning the oldest copy:
    # what holds at every such moment is checked, not one moment's file count
    last = load_checkpoint(run / "checkpoints" / "last.safetensors").meta["step"]
    kept = {int(p.stem.split("-")[1]): p for p in (run / "checkpoints").glob("step-*.safetensors")}
    assert (
        last >= 32 and 2 <= len(kept) <= 3 and max(kept) in (last, last - 5)
    )  # keep_last=2; last is written before its copy
    older = [p for step, p in sorted(kept.items()) if step < last]
    assert older
    with pytest.raises(AnnkitError, match="the run went on past this checkpoint"):
        prepare_argv([f"resume={older[0]}"])  # an older copy: resuming it would rewrite the steps after it
    if last in kept:  # the copy of last (absent when the kill came between the two writes)
        assert prepare_argv([f"resume={kept[last]}"])[-3] == override("resume", str(kept[last].resolve()))
    proc = run_annkit("train", f"resume={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_run(real_reference[0], run, real_reference[1], json.loads((run / "metrics.json").read_text()))
    assert tb_steps(run, "step/loss_train") == tb_steps(real_reference[0], "step/loss_train")


def test_a_second_ctrl_c_stops_at_once_and_leaves_whole_files(tmp_path, fashion_dir):
    proc = start(tmp_path, *REAL, f"dataset.root={fashion_dir}", "hydra.run.dir=twice")
    wait_for_row(proc, "1/3")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130 and "Traceback" not in out, out
    assert "annkit train resume=twice" in out and "<run dir>" not in out  # the real command
    folder = tmp_path / "twice" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best.safetensors", "last.safetensors"]  # no temporary file
    assert load_checkpoint(folder / "last.safetensors", state=True).meta["step"] >= 32  # whole: epoch 1 or later


def test_resume_bad_targets_through_the_cli(tmp_path, precious):
    assert_user_error(
        run_annkit("train", "resume=outputs/train/runs/nope", cwd=tmp_path), "no such run dir or checkpoint file"
    )
    assert_user_error(run_annkit("train", "resume=outputs/train/runs/earlier", cwd=tmp_path), "not an annkit run dir")
    (tmp_path / "x.pt").write_bytes(b"\x80\x04\x95not a checkpoint")
    assert_user_error(run_annkit("train", "resume=x.pt", cwd=tmp_path), "never unpickles")
    assert_user_error(
        run_annkit("lr-find", "resume=x.pt", "dataset=xor", cwd=tmp_path), "lr-find starts no run to resume"
    )


def test_an_output_dir_that_cannot_be_written_is_refused_before_anything_runs(tmp_path, precious):
    (tmp_path / "a_file").write_text("")
    proc = run_annkit("train", "hydra.run.dir=a_file/run", "dataset=xor", cwd=tmp_path)
    assert_user_error(proc, "annkit cannot write its run to", "a_file is a file, not a folder", "hydra.run.dir=")
    assert proc.returncode == 2
