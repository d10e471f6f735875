"""What to tell the user when a run went wrong: after a divergence, an lr that the run itself showed
to work (or the LR finder); after a finished run that learned nothing, a warning that says so.

Pure functions of what the run measured, plus :class:`LossTrend`, the hook that records the
training loss at each log interval with its learning rate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from annkit.commands import command, override
from annkit.loop import Hook

GROWTH = 100.0  # a loss this many times its best (or a uniform guess's) has grown "by orders of magnitude"
CHANCE_MARGIN = 0.01  # an accuracy within this of the majority class's share is chance level


class LossTrend(Hook):
    """(lr, mean training loss) of every log interval, for :func:`divergence_advice`."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def on_log(self, *, step: int, epoch: int, lr: float, metrics: dict[str, float]) -> None:
        self.points.append((lr, metrics["loss"]))


def last_falling_lr(points: Sequence[tuple[float, float]]) -> float | None:
    """The lr of the last log interval whose mean loss was below the interval before it (None: the
    loss never fell between two intervals)."""
    found = None
    for (_, before), (lr, now) in itertools.pairwise(points):
        if math.isfinite(before) and math.isfinite(now) and now < before:
            found = lr
    return found


def divergence_advice(
    where: dict[str, Any], points: Sequence[tuple[float, float]], *, nan_policy: str, overrides: Sequence[str]
) -> str:
    """What to try after the loss stopped being finite at ``where`` (step, lr, …)."""
    finder = command("lr-find", *[o for o in overrides if not o.startswith(("optimizer.lr=", "trainer.nan_policy="))])
    fell = last_falling_lr(points)
    tried = [lr for lr, _ in points if math.isfinite(lr)] + [where["lr"]]
    if fell is not None:
        lr = (
            f"Try a learning rate below {fell:.3g}, the last at which the loss still fell (e.g. optimizer.lr={fell / 3:.2g}), "
            f"or measure one with `{finder}`."
        )
    else:
        span = f"{min(tried):.3g}" if min(tried) == max(tried) else f"{min(tried):.3g} … {max(tried):.3g}"
        lr = (
            f"Try a much lower learning rate: the loss fell at none this run used ({span}; typical values are 1e-4 … 1e-2 "
            f"for Adam(W), 1e-3 … 1e-1 for SGD). Measure one with `{finder}`."
        )
    skip = (
        ""
        if nan_policy == "skip_batch"
        else ", or trainer.nan_policy=skip_batch to skip the batches whose loss is not finite and go on"
    )
    return f"{lr} Gradient clipping (trainer.grad_clip=1.0) and batch norm (model.norm=batch) also help{skip}."


def uniform_loss(loss: str, task: str, k: int) -> float | None:
    """The loss of a prediction that knows nothing: ln K for ce, ln 2 for bce; None for mse."""
    if loss == "ce":
        return math.log(k) if k > 1 else None
    if loss == "bce":
        return math.log(2)
    return None


def result_warnings(
    history: Sequence[dict[str, float]], val: dict[str, Any], *, task: str, loss: str, k: int, lr: float
) -> list[str]:
    """Warnings for a run that finished but learned nothing: accuracy at chance level, or a training
    loss orders of magnitude above its best or above a uniform guess."""
    out = []
    losses = [row["train/loss"] for row in history if math.isfinite(row.get("train/loss", math.nan))]
    guess = uniform_loss(loss, task, k)
    if losses and guess is not None and losses[-1] > GROWTH * guess:
        out.append(
            f"the training loss ended at {losses[-1]:.3g}, orders of magnitude above what a uniform guess scores "
            f"({guess:.3g} = ln {k if loss == 'ce' else 2}): the steps overshoot. The learning rate ({lr:.3g}) is "
            f"likely far too high; `annkit lr-find` with the same overrides measures one."
        )
    elif len(losses) > 1 and min(losses) > 0 and losses[-1] > GROWTH * min(losses):
        out.append(
            f"the training loss grew from {min(losses):.3g} to {losses[-1]:.3g} (×{losses[-1] / min(losses):,.0f}): "
            f"training went unstable. Lower the learning rate ({lr:.3g}) or clip gradients (trainer.grad_clip=1.0)."
        )
    support = val.get("support") if task == "classification" else None
    if support and sum(support.values()) > 0 and k > 1:
        n = sum(support.values())
        majority = max(support.values()) / n
        accuracy = val.get("accuracy", math.nan)
        if math.isfinite(accuracy) and accuracy <= majority + CHANCE_MARGIN:
            out.append(
                f"the best validation accuracy, {accuracy:.1%}, is at chance level: always answering the most "
                f"frequent class scores {majority:.1%} on these {n:,} samples, so the network learned nothing "
                f"useful. Check the learning rate ({lr:.3g}; `annkit lr-find` measures one), the model, and the data."
            )
    return out


def diverged_text(where: dict[str, Any], steps: int, kept: str) -> str:
    """What happened (step, epoch, lr) and what was kept."""
    lr = where["lr"]
    if where.get("all_skipped"):
        what = (
            f"Every batch of epoch {where['epoch']} gave a NaN or infinite loss and was skipped "
            f"(trainer.nan_policy=skip_batch), so the run stopped at step {where['step']} (lr {lr:.3g})"
        )
    else:
        what = (
            f"The training loss became {where['loss']} at step {where['step']} (epoch {where['epoch']}, batch "
            f"{where['batch']} of {steps}) with lr {lr:.3g}, so the run stopped there (trainer.nan_policy=stop)"
        )
    return f"{what}; nothing after the loss diverged was saved: {kept}, and no metrics.json was written."


def go_on_note(run_dir: Path, shown: str) -> str:
    """The note for a run stopped at once (a second Ctrl-C): the command that goes on, when it can."""
    if (run_dir / "checkpoints" / "last.safetensors").is_file():
        return (
            f"stopped at once. {shown}/checkpoints/last.safetensors is whole and holds the last saved state: go on "
            f"with `{command('train', override('resume', shown))}`."
        )
    return "stopped at once, before the run saved its first checkpoint: start it again with the same command."


def perceptron_outcome(history: Sequence[dict[str, float]], n_train: int) -> tuple[bool, str]:
    """(converged, what to say) after the perceptron rule: it converged when an epoch made no mistake — and so no
    update — on the training samples; otherwise no line it tried separated them."""
    if history and history[-1].get("train/accuracy", 0.0) >= 1.0:
        return True, (
            f"the perceptron rule converged: epoch {len(history)} made no update (every training sample on the right "
            f"side of the line w·x + b = 0), so training stopped."
        )
    wrong = round((1 - history[-1]["train/accuracy"]) * n_train) if history else n_train
    return False, (
        f"the perceptron rule did not converge in {len(history)} epochs: the last one still got {wrong} of {n_train} "
        f"training samples wrong. If no line separates the classes — XOR's do not — it never will: one neuron draws "
        f"one line. A hidden layer can (experiment=xor_tanh trains one by backprop; experiment=xor_by_hand sets one "
        f"by hand)."
    )
