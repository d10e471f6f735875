"""The training step, evaluation and fit: exact gradient descent, metrics, best weights, early stopping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from annkit.data import Batcher
from annkit.fit_state import EarlyStopping, Running, improved
from annkit.head import Head
from annkit.loop import Hook, evaluate, train_step
from annkit.losses import cross_entropy
from annkit.metrics import metric_mode
from tests.fitting import fit_with

HEAD = Head("classification", "abc", "ce", "softmax")  # three classes a, b, c; softmax + cross-entropy


def identity_prepare(x: torch.Tensor, train: bool) -> torch.Tensor:
    return x


def test_train_step_is_one_gradient_descent_step():
    # Softmax regression z = W·x + b, mean CE over the batch: ∂L/∂W = (p − y)ᵀ·X / B, ∂L/∂b = mean(p − y).
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    x, y = torch.randn(5, 4), torch.tensor([0, 2, 1, 2, 0])
    lr = 0.5
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss, penalty, logits = train_step(model, opt, x, y, loss_fn=cross_entropy)
    p = torch.softmax(x @ w0.T + b0, 1)
    err = p - torch.nn.functional.one_hot(y, 3).float()
    torch.testing.assert_close(model.weight.detach(), w0 - lr * err.T @ x / 5)
    torch.testing.assert_close(model.bias.detach(), b0 - lr * err.mean(0))
    torch.testing.assert_close(loss, -p[torch.arange(5), y].log().mean())
    assert not loss.requires_grad and logits.shape == (5, 3) and penalty is None


def test_gradient_clipping_limits_the_update():
    model = nn.Linear(2, 2, bias=False)
    nn.init.zeros_(model.weight)
    x, y = torch.tensor([[1000.0, -1000.0]]), torch.tensor([0])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    train_step(model, opt, x, y, loss_fn=cross_entropy, grad_clip=1.0)
    assert model.weight.norm().item() == pytest.approx(1.0, rel=1e-5)  # ‖Δθ‖ = lr·‖clipped g‖ = 1


def test_running_means_weight_batches_by_size():
    r = Running(torch.device("cpu"), penalty=True)
    r.add(
        torch.tensor(1.0), 3, torch.tensor(0.5), HEAD.hits(torch.tensor([[1.0, 0.0, 0.0]] * 3), torch.tensor([0, 0, 1]))
    )  # 2/3 right
    r.add(
        torch.tensor(4.0), 1, torch.tensor(0.1), HEAD.hits(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([1]))
    )  # 1/1 right
    assert r.read() == pytest.approx({"loss": (3 * 1.0 + 4.0) / 4, "penalty": (3 * 0.5 + 0.1) / 4, "accuracy": 3 / 4})


def test_metric_modes_and_improvement():
    assert metric_mode("val/accuracy") == "max" and metric_mode("val/loss") == "min"
    assert improved(0.5, None, "min") and not improved(float("nan"), None, "min")
    assert improved(0.4, 0.5, "min") and not improved(0.45, 0.5, "min", min_delta=0.1)
    assert improved(0.9, 0.8, "max") and not improved(0.8, 0.8, "max")


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    return centers[y] + torch.randn(n, 2, generator=g), y


class Recorder(Hook):
    def __init__(self) -> None:
        self.steps, self.logs, self.rows, self.best = 0, [], [], []

    def on_step(self, step: int) -> None:
        self.steps += 1

    def on_log(self, **kw) -> None:
        self.logs.append(kw)

    def on_epoch_end(self, row, *, is_best) -> None:
        self.rows.append(row)
        self.best.append(is_best)


def test_fit_learns_and_keeps_the_best_weights():
    torch.manual_seed(0)
    x, y = blobs(600, 0)
    vx, vy = blobs(300, 1)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder()
    result = fit_with(
        model,
        opt,
        Batcher(x, y, 32, shuffle=True, generator=torch.Generator().manual_seed(0)),
        Batcher(vx, vy, 100),
        epochs=4,
        head=HEAD,
        prepare=identity_prepare,
        log_every=7,
        hooks=[rec],
    )
    assert rec.steps == 4 * 19
    # every log_every=7 steps, and at each epoch's end (19, 38, 57, 76) for the steps since the last line
    assert [log["step"] for log in rec.logs] == sorted({*range(7, 77, 7), 19, 38, 57, 76})
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert result.history[-1]["val/accuracy"] > 0.95
    best = result.history[result.best_epoch - 1]
    assert best["val/accuracy"] == max(r["val/accuracy"] for r in result.history)
    assert rec.best[result.best_epoch - 1]
    model.load_state_dict(result.best_state)
    again = evaluate(model, Batcher(vx, vy, 100), head=HEAD, prepare=identity_prepare)
    assert (again["loss"], again["accuracy"]) == pytest.approx((best["val/loss"], best["val/accuracy"]))
    assert again["balanced_accuracy"] == pytest.approx(best["val/balanced_accuracy"])
    assert result.samples_seen == 4 * 600


def test_early_stopping_after_patience_epochs_without_improvement():
    x, y = blobs(64, 0)
    model = nn.Linear(2, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing changes: val loss never improves
    result = fit_with(
        model,
        opt,
        Batcher(x, y, 16),
        Batcher(x, y, 64),
        epochs=10,
        head=HEAD,
        prepare=identity_prepare,
        best_metric="val/loss",
        early_stopping=EarlyStopping("val/loss", patience=2),
    )
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


def test_per_step_schedule_runs_to_its_end():
    x, y = blobs(100, 0)
    model = nn.Linear(2, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=3 * 4)
    result = fit_with(
        model,
        opt,
        Batcher(x, y, 25),
        Batcher(x, y, 100),
        epochs=3,
        head=HEAD,
        prepare=identity_prepare,
        scheduler=sched,
        scheduler_interval="step",
    )
    lrs = [r["lr"] for r in result.history]
    assert lrs[0] > lrs[-1] and sched.last_epoch == 12  # stepped once per batch, exactly total_steps


def test_label_smoothing_only_in_the_training_loss():
    x, y = blobs(50, 0)
    model = nn.Linear(2, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    result = fit_with(
        model,
        opt,
        Batcher(x, y, 50),
        Batcher(x, y, 50),
        epochs=1,
        head=Head("classification", "abc", "ce", "softmax", label_smoothing=0.5),
        prepare=identity_prepare,
    )
    plain = cross_entropy(model(x), y).mean().item()
    smoothed = cross_entropy(model(x), y, label_smoothing=0.5).mean().item()
    row = result.history[0]
    assert row["val/loss"] == pytest.approx(plain, rel=1e-5)
    assert row["train/loss"] == pytest.approx(smoothed, rel=1e-5)


def test_fit_augments_training_batches_only():
    x, y = blobs(64, 0)
    calls = []

    def recording_prepare(batch: torch.Tensor, train: bool) -> torch.Tensor:
        calls.append(train)
        return batch

    model = nn.Linear(2, 3)
    fit_with(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        Batcher(x, y, 16),
        Batcher(x, y, 32),
        epochs=2,
        head=HEAD,
        prepare=recording_prepare,
    )
    assert calls == ([True] * 4 + [False] * 2) * 2  # 4 training batches, then 2 validation batches, per epoch


def test_evaluate_uses_eval_mode_and_restores_training_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    x, y = blobs(40, 0)
    model.train()
    for _ in range(3):
        model(x)  # move the BN running statistics away from their initial values
    score = evaluate(model, Batcher(x, y, 7), head=HEAD, prepare=identity_prepare)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(x)  # running stats, no dropout: what evaluation must compute
    assert score["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert score["loss"] == pytest.approx(cross_entropy(logits, y).mean().item(), rel=1e-5)


def test_epoch_interval_scheduler_and_min_delta_early_stopping():
    x, y = blobs(64, 0)
    model = nn.Linear(2, 3)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    result = fit_with(
        model,
        opt,
        Batcher(x, y, 16),
        Batcher(x, y, 64),
        epochs=8,
        head=HEAD,
        prepare=identity_prepare,
        scheduler=sched,
        scheduler_interval="epoch",
        early_stopping=EarlyStopping("val/loss", patience=2, min_delta=10.0),  # no change is ever large enough
    )
    assert [r["lr"] for r in result.history] == [1.0, 0.5, 0.25]  # halved once per epoch, not per step
    assert result.stopped_early and len(result.history) == 3  # epoch 1 sets the mark, 2 and 3 miss it by min_delta


def test_short_epochs_still_report_progress_once_per_epoch():
    x, y = blobs(40, 0)
    model = nn.Linear(2, 3)
    rec = Recorder()
    fit_with(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        Batcher(x, y, 10),
        Batcher(x, y, 40),
        epochs=2,
        head=HEAD,
        prepare=identity_prepare,
        log_every=50,
        hooks=[rec],
    )
    assert [log["step"] for log in rec.logs] == [4, 8]  # 4 steps per epoch < log_every: one line at each epoch end
    assert [log["metrics"]["loss"] for log in rec.logs] == pytest.approx([r["train/loss"] for r in rec.rows])
