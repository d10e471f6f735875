"""What a run says before it trains: the header's lines (data, source, model, loss, optimizer, schedule, stopping,
device, run dir), the warnings about the setup, and the table of what model.init_from loaded. Task layer: these
read the config beside the built objects, and return text; the tasks print it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from annkit import distributed
from annkit.commands import shown
from annkit.data import Data
from annkit.distributed import World
from annkit.finetune import InitReport
from annkit.head import Head
from annkit.models import ACTIVATIONS, ZERO_GRADIENT, activation_name, count_params, describe_model
from annkit.tasks.build import Built
from annkit.tasks.learning_rate import LearningRate, max_lr_text

Facts = list[tuple[str, str]]


def describe_task(data: Data) -> str:
    k = data.num_classes
    if data.task == "classification":
        return f"{k} classes"
    if data.task == "multilabel":
        return f"{k} labels (multi-label)"
    return f"regression, {k} target{'s' if k > 1 else ''}"


def describe_loss(loss: dict[str, Any], head: Head, class_weights: list[float] | None, weighted: bool) -> str:
    """e.g. 'ce (label smoothing 0.1) → softmax · class weights balanced [0.5, …] · Σwℓ/N · l2 λ=0.01'."""
    name = loss["name"]
    if loss.get("label_smoothing"):
        name += f" (label smoothing {loss['label_smoothing']:g})"
    if loss.get("pos_weight") is not None:
        name += f" (pos_weight {loss['pos_weight']})"
    parts = [f"{name} · {head.describe()}"]
    if class_weights is not None:
        shown_w = ", ".join(f"{w:.3g}" for w in class_weights)
        parts.append(f"class weights {'balanced ' if loss['class_weights'] == 'balanced' else ''}[{shown_w}]")
    if class_weights is not None or weighted:
        parts.append("Σwℓ/N" if loss["reduction"] == "mean" else "Σwℓ/Σw")
    if loss["l2"]:
        parts.append(f"l2 λ={loss['l2']:g} (λ/2m·ΣW²)")
    if loss["l1"]:
        parts.append(f"l1 λ={loss['l1']:g} (λ/m·Σ|W|)")
    return " · ".join(parts)


def facts(cfg: dict[str, Any], built: Built, run_dir: Path, *, optim: str, schedule: str) -> Facts:
    """The header's lines: data, source, model, loss, optimizer, schedule, stopping, device, run dir."""
    trainer, stop = cfg["trainer"], cfg["trainer"]["early_stopping"]
    data, network, machine = built.problem.data, built.network, built.machine
    params, trainable = count_params(network.model)
    shape = (
        "×".join(map(str, data.input_shape)) if len(data.input_shape) > 1 else f"{math.prod(data.input_shape)} features"
    )
    counted = f"{params:,} parameters"
    if network.frozen:
        layers = f"layer{'s' if len(network.frozen) > 1 else ''} {', '.join(map(str, network.frozen))}"
        counted += f" ({trainable:,} trainable, {params - trainable:,} frozen: {layers})"
    threads = machine.threads.describe() if machine.threads else f"{torch.get_num_threads()} threads"
    compiled = " · torch.compile" if trainer["compile"] else ""
    lines: Facts = [
        ("data", f"{cfg['dataset']['name']}: train {len(data.train):,} · val {len(data.val):,} · test "
                 f"{len(data.test):,} · {shape} · {describe_task(data)}"),
        ("source", data.source),
        *(("", note) for note in data.notes),
        ("model", f"{describe_model(network.model.spec)} · {counted}"),
        *([("init", network.init.describe())] if network.init is not None else []),
        ("loss", describe_loss(cfg["loss"], built.problem.head, built.problem.class_weights, data.train.w is not None)),
        ("optim", optim),
        ("schedule", schedule),
    ]  # fmt: skip
    if stop["patience"] is not None:
        lines.append(("stopping", f"early stopping: after {stop['patience']} epoch(s) without an improvement of "
                                  f"{stop['metric']} by more than {stop['min_delta']:g}"))  # fmt: skip
    lines.append(("device", f"{machine.device} · {'bf16 autocast' if machine.amp else 'fp32'}{compiled} · torch "
                            f"{torch.__version__} · {threads} · seed {trainer['seed']}"))  # fmt: skip
    lines.append(("run dir", shown(run_dir)))
    return lines


def optimizer_text(built: Built, lr: LearningRate, schedule: str) -> str:
    """'AdamW lr 0.003 (lr-find: …) · output layer lr × 5 · OneCycleLR (per step) to max_lr 0.003'."""
    optimizer = built.network.optimizer
    found = f" (lr-find: {lr.found.describe()})" if lr.found is not None else ""
    groups = optimizer.param_groups
    head = ""
    if len(groups) > 1 or groups[0].get("lr_mult", 1) != 1:
        head = f" · output layer lr × {groups[-1]['lr_mult']:g}"
    return f"{type(optimizer).__name__} lr {lr.used:g}{found}{head} · {schedule}"


def schedule_text(cfg: dict[str, Any], scheduler: Any, interval: str, steps: int) -> str:
    """The schedule's name, its peak, or why scheduler=auto trains at a constant lr."""
    if scheduler is None:
        if cfg["scheduler"]["_target_"] is None:
            return "constant lr"
        return (f"constant lr (scheduler=auto: {steps} steps are too few to warm up a one-cycle schedule; "
                f"scheduler=onecycle insists)")  # fmt: skip
    text = f"{type(scheduler).__name__} (per {interval})"
    if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        text += f" to max_lr {max_lr_text(cfg['scheduler']['max_lr'])}"
    return text


def train_facts(cfg: dict[str, Any], built: Built, run_dir: Path, lr: LearningRate, schedule: str,
                world: World | None, resumed_from: str | None) -> Facts:  # fmt: skip
    """The header of ``annkit train``: :func:`facts`, plus the torchrun split and where a resumed run goes on."""
    trainer, steps = cfg["trainer"], len(built.problem.train)
    lines = facts(cfg, built, run_dir, optim=optimizer_text(built, lr, schedule),
                  schedule=f"{trainer['epochs']} epochs × {steps} steps of {trainer['batch_size']}")  # fmt: skip
    if world is not None:
        lines.append(("ddp", f"{world.size} processes ({distributed.backend()}, {built.machine.device.type}) · global "
                             f"batch {trainer['batch_size']} = {world.size} × {trainer['batch_size'] // world.size} per "
                             f"rank · lr as set: the same effective batch as one process (raising trainer.batch_size "
                             f"with the processes? scale the lr by the same factor, the linear scaling rule)"))  # fmt: skip
    if resumed_from is not None:
        lines.append(("resume", resumed_from))
    return lines


def zero_gradient_warning(hidden: list[int], activation: Any) -> str | None:
    """The warning for step-like hidden activations, whose derivative is 0 wherever it exists."""
    name = activation_name(activation)
    if not hidden or ACTIVATIONS[name] not in ZERO_GRADIENT:
        return None
    return (
        f"model.activation={name} has a derivative of 0 everywhere (and none at 0), so backpropagation passes no "
        f"gradient through it: the weights of the {len(hidden)} hidden layer(s) will stay at their random initial "
        f"values and only the output layer learns (a fixed random feature map with a trained linear read-out). "
        f"This is why the perceptron's step gave way to smooth units: use sigmoid or tanh to train every layer."
    )


def setup_warnings(cfg: dict[str, Any], built: Built, lr: LearningRate) -> list[str]:
    """What is odd about this setup before it trains: step-like activations, frozen random layers, the LR search's
    problems, classes without training samples."""
    model, network, problem = cfg["model"], built.network, built.problem
    trains = cfg["trainer"]["epochs"] > 0  # trainer.epochs=0 scores given weights: nothing needs a gradient
    warnings = [w for w in [zero_gradient_warning(model["hidden"], model["activation"])] if w and trains]
    if network.frozen and not model["init_from"]:
        warnings.append(f"model.freeze keeps layer(s) {network.frozen} at their random initial weights (there is no "
                        f"model.init_from): they act as a fixed random feature map.")  # fmt: skip
    if lr.found is not None:
        warnings += [f"lr-find: {text}" for text in lr.found.problems().values()]
    empty = [name for name, n in zip(problem.data.names, problem.train_counts) if n == 0]
    if empty:
        warnings.append(f"{len(empty)} class(es) have no training samples ({', '.join(empty)}): the network can never "
                        f"learn to predict them, and their validation recall stays 0. Check dataset.class_fraction, "
                        f"dataset.limit_train and the data itself.")  # fmt: skip
    return warnings


def init_table(report: InitReport, model_state: dict[str, torch.Tensor]) -> Table:
    table = Table(title="model.init_from, tensor by tensor", title_justify="left", title_style="bold", box=None,
                  header_style="bold", pad_edge=False)  # fmt: skip
    for name in ("tensor", "shape", "checkpoint", "status"):
        table.add_column(name, justify="right" if name in ("shape", "checkpoint") else "left")
    for name, here, there, status in report.rows(model_state):
        style = "green" if status == "loaded" else "yellow" if status.startswith("fresh") else "dim"
        table.add_row(name, here, there, f"[{style}]{status}[/]")
    return table
