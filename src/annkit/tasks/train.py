"""``annkit train``: compose → validate → build → fit → test with the best weights → record.

``train(cfg, run_dir)`` is the only function that reads the config; everything it calls takes
plain arguments. ``main`` is the Hydra entry point (one per subcommand), so ``-m`` sweeps,
``--cfg job``, ``--help``, ``--config-dir`` and shell completion work as in any Hydra app.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from rich.text import Text

from annkit import __version__, distributed
from annkit.advice import LossTrend, diverged_text, divergence_advice, go_on_note, result_warnings
from annkit.checkpoint import Checkpoint, Checkpointer, atomic_write_bytes, load_strict, peek
from annkit.commands import command, override
from annkit.config import path_values, validate
from annkit.dashboard import Dashboard, hparam_values, model_markdown, table_plane
from annkit.data import Batcher, Data, load_data
from annkit.distributed import World, world_from_env
from annkit.errors import AnnkitError, Interrupted, TrainingDiverged, print_error, user_errors
from annkit.finetune import InitReport, init_from, param_groups, report_markdown, resolve_freeze
from annkit.head import Head, check_task_and_loss
from annkit.loop import EarlyStopping, FitState, Penalty, evaluate, fit, train_step
from annkit.losses import balanced_class_weights, penalized_weights, sample_weights, weight_penalty
from annkit.memory import check_fits, optimizer_slots, planned_inputs, widths_of
from annkit.metrics import scalars
from annkit.models import ACTIVATIONS, MLP, ZERO_GRADIENT, activation_name, count_params, summarize
from annkit.overrides import key_of, rewritten
from annkit.resume import open_resume, resumed_config
from annkit.resume import prepare_argv as resume_argv
from annkit.rundir import protect
from annkit.runtime import (
    StopSignals,
    Threads,
    autocast_dtype,
    generator,
    parallel_jobs,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from annkit.schema import TASK_METRICS
from annkit.sweeps import objective
from annkit.tracking import ConsoleReporter, TensorBoardLogger, confusion_markdown, flatten, shown


def build_scheduler(
    spec: dict[str, Any], optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, str]:
    """The scheduler of ``spec`` (validated, resolved) and its interval (step | epoch).

    annkit passes the length of the schedule: ``total_steps`` (OneCycleLR) or ``T_max``
    (CosineAnnealingLR) = epochs × steps per epoch, or epochs when ``interval=epoch``. With
    several parameter groups (``optimizer.head_lr_mult``), OneCycleLR's max_lr becomes one per
    group, scaled by each group's ``lr_mult``. A one-cycle schedule too short to warm up is refused, or,
    with ``if_too_short: constant`` (scheduler=auto), left out: the run trains at a constant lr.
    """
    spec = dict(spec)
    interval = spec.pop("interval")
    too_short = spec.pop("if_too_short", "refuse")
    if spec.get("_target_") is None:
        return None, interval
    length = epochs * steps_per_epoch if interval == "step" else epochs
    cls = get_class(spec["_target_"])
    params = inspect.signature(cls).parameters
    filled: dict[str, Any] = {name: length for name in ("total_steps", "T_max") if name in params}
    if issubclass(cls, torch.optim.lr_scheduler.OneCycleLR):
        if len(optimizer.param_groups) > 1 and isinstance(spec.get("max_lr"), (int, float)):
            # a head at optimizer.head_lr_mult × lr peaks at max_lr × the same factor
            peak = spec.pop("max_lr")
            filled["max_lr"] = [peak * g.get("lr_mult", 1.0) for g in optimizer.param_groups]
        # torch's one-cycle needs a warm-up phase of ≥ 1 whole step: pct_start·total ≥ 2, else it divides by 0
        pct = spec.get("pct_start", params["pct_start"].default)
        if pct * length < 2 and too_short == "constant":
            return None, interval  # scheduler=auto: a constant lr (the header says why)
        if pct * length < 2:
            unit = "steps" if interval == "step" else "epochs"
            raise AnnkitError(
                f"scheduler=onecycle cannot warm up over this run: pct_start {pct:g} × {length} {unit} = "
                f"{pct * length:g}, and it needs at least 2 (one whole warm-up step). The run has {epochs} "
                f"epoch(s) of {steps_per_epoch} batch(es). Train longer (trainer.epochs, dataset.limit_train), "
                f"use smaller batches (trainer.batch_size), raise scheduler.pct_start, or use scheduler=auto (a "
                f"constant lr for runs this short), scheduler=none or scheduler=cosine."
            )
    return instantiate(spec, _convert_="all")(optimizer, **filled), interval


def finite_or_null(tree: Any) -> Any:
    """NaN and ±inf (a diverged run) become null, so metrics.json stays valid JSON."""
    if isinstance(tree, dict):
        return {k: finite_or_null(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [finite_or_null(v) for v in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


def describe_model(
    hidden: list[int], activation: Any, dropout: float, norm: str, in_features: int, out_features: int
) -> str:
    widths = " → ".join(str(w) for w in [in_features, *hidden, out_features])
    if not hidden:
        return f"linear {widths} ({'logistic' if out_features == 1 else 'softmax'} regression)"
    extras = [activation_name(activation)]
    if norm != "none":
        extras.append(f"{norm} norm")
    if dropout:
        extras.append(f"dropout {dropout:g}")
    return f"MLP {widths} ({', '.join(extras)})"


def describe_task(data: Data) -> str:
    k = data.num_classes
    if data.task == "classification":
        return f"{k} classes"
    if data.task == "multilabel":
        return f"{k} labels (multi-label)"
    return f"regression, {k} target{'s' if k > 1 else ''}"


def describe_loss(loss: dict[str, Any], head: Head, class_weights: list[float] | None, weighted: bool) -> str:
    """e.g. 'ce (label smoothing 0.1) → softmax · class weights balanced [0.5, …] · Σwℓ/N · l2 λ=0.01'."""
    parts = [
        f"{loss['name']}"
        + (f" (label smoothing {loss['label_smoothing']:g})" if loss.get("label_smoothing") else "")
        + (f" (pos_weight {loss['pos_weight']})" if loss.get("pos_weight") is not None else "")
        + f" · {head.describe()}"
    ]
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


def resolve_class_weights(spec: Any, data: Data, train_counts: list[int], dataset: str) -> list[float] | None:
    """``loss.class_weights`` (null | list | balanced) as K numbers, checked against the data."""
    if spec is None:
        return None
    if data.task != "classification":
        raise AnnkitError(
            f"loss.class_weights weighs single-label classes, but dataset {dataset} is {data.task}. "
            + (
                "For imbalanced labels use loss=bce with loss.pos_weight (one number per label). "
                if data.task == "multilabel"
                else "To weigh regression samples, give per-sample weights (dataset.sample_weight). "
            )
            + "Or set loss.class_weights=null."
        )
    k = data.num_classes
    if spec == "balanced":
        return balanced_class_weights(train_counts)
    if len(spec) != k:
        names = ", ".join(f"{i}: {n}" for i, n in enumerate(data.names))
        raise AnnkitError(
            f"loss.class_weights has {len(spec)} values, but dataset {dataset} has {k} classes ({names}). Give one weight "
            f"per class, in this order, e.g. loss.class_weights=[{', '.join(['1'] * k)}], or loss.class_weights=balanced "
            f"(n / (K·n_c) from the training split)."
        )
    return [float(w) for w in spec]


def task_metric(name: str, task: str, key: str) -> str:
    """A val/<metric> that the task reports (``auto``: val/accuracy, or val/loss for regression)."""
    if name == "auto":
        return "val/loss" if task == "regression" else "val/accuracy"
    valid = [f"val/{m}" for m in TASK_METRICS[task]]
    if name not in valid:
        raise AnnkitError(
            f"{key}={name} is not measured for a {task} task. Valid for {task}: {', '.join(valid)} (or auto for "
            f"trainer.best_metric). Set it with {key}=<metric>."
        )
    return name


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


@dataclass
class Setup:
    """Everything ``train`` and ``lr-find`` build from one resolved config, wired and on the device."""

    resolved: dict[str, Any]
    device: torch.device
    amp: torch.dtype | None
    rng: torch.Generator  # shuffling and augmentation
    data: Data
    head: Head
    class_weights: list[float] | None
    train_counts: list[int]
    model: MLP
    optimizer: torch.optim.Optimizer
    penalty: Penalty | None
    train_batches: Batcher
    val_batches: Batcher
    test_batches: Batcher
    threads: Threads | None = None  # torch's CPU threads (and their governor under trainer.threads=auto)
    init: InitReport | None = None  # what model.init_from loaded
    frozen: list[int] = field(default_factory=list)  # dense layers kept fixed (model.freeze)

    def step(self) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
        """annkit's training step (:func:`annkit.loop.train_step`, as ``fit`` takes it) on a raw batch,
        returning the objective it minimised: the weighted data loss plus the L1/L2 penalty."""
        lc, t = self.resolved["loss"], self.resolved["trainer"]
        loss_fn = self.head.loss_fn(train=True)

        def objective(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
            loss, reg, _ = train_step(
                self.model,
                self.optimizer,
                self.data.prepare(x, True),
                y,
                w,
                loss_fn=loss_fn,
                reduction=lc["reduction"],
                penalty=self.penalty,
                autocast_dtype=self.amp,
                grad_clip=t["grad_clip"],
            )
            assert loss is not None  # no skipping here
            return loss if reg is None else loss + reg

        return objective


def fused_on_cuda(spec: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """On CUDA, torch's fused (one-kernel) implementation of the optimizer when it has one (Adam,
    AdamW, SGD, …) and the config does not choose: the same update in fewer kernel launches."""
    if device.type != "cuda" or "fused" in spec:
        return spec
    cls = get_class(spec["_target_"])
    return {**spec, "fused": True} if "fused" in inspect.signature(cls).parameters else spec


def build(resolved: dict[str, Any], *, load_init: bool = True, jobs: int = 1, world: World | None = None) -> Setup:
    """Seed, load the data, and build the head, model (with ``model.init_from`` and ``model.freeze``),
    optimizer, penalty and batchers of a validated config. With ``optimizer.lr=auto`` the optimizer
    starts at lr_find.start_lr (the finder sets it). ``load_init=False`` skips init_from (a resumed
    run loads its own weights); ``jobs``: the sweep jobs running at once (they share the cores);
    ``world``: under torchrun, this rank's place (its device, its shard of the training batches)."""
    t, d, m, lc = resolved["trainer"], resolved["dataset"], resolved["model"], resolved["loss"]
    threads = Threads(t["threads"], world.local_size if world is not None else jobs)
    device = resolve_device(t["device"])
    if world is not None:
        device = distributed.init(world, device)
    in_features, outputs = planned_inputs(d)  # known from the config (a table's header), before any data is read
    check_fits(
        widths_of(in_features, m["hidden"], outputs),
        device,
        norm=m["norm"] != "none",
        batch=t["batch_size"],
        eval_batch=t["eval_batch_size"],
        slots=optimizer_slots(resolved["optimizer"]),
        what="Training this model",
    )
    seed_everything(t["seed"], t["deterministic"])
    amp = autocast_dtype(t["precision"], device)
    rng = generator(device, t["seed"] + 1)  # shuffling and augmentation; dropout and init use torch's global stream

    data = load_data(d, seed=t["seed"], device=device, generator=rng)
    if world is None:
        threads.settle()  # trainer.threads=auto: the cores other processes left free while the data loaded
    output = check_task_and_loss(data.task, data.num_classes, lc["name"], m["output_activation"], d["name"])
    own = {k: v for k, v in lc.items() if k in ("label_smoothing", "pos_weight")}  # the keys only ce / bce have
    head = Head(data.task, data.names, lc["name"], output, device=device, **own)
    if head.pos_weight is not None and len(head.pos_weight) not in (1, head.outputs):
        raise AnnkitError(
            f"loss.pos_weight has {len(head.pos_weight)} values, but the model has {head.outputs} output(s): give one "
            f"number, or one per label ({', '.join(data.names)})."
        )
    train_counts = (
        torch.bincount(data.train.y, minlength=data.num_classes).tolist() if data.task == "classification" else []
    )
    class_weights = resolve_class_weights(lc["class_weights"], data, train_counts, d["name"])
    train_w = sample_weights(data.train.y, class_weights, data.train.w)
    if m["norm"] == "batch" and len(data.train) < 2:
        raise AnnkitError(
            f"model.norm=batch needs at least 2 training samples, but the training split holds {len(data.train)}. "
            f"Use more training data, or model.norm=layer / none."
        )
    model = MLP(
        math.prod(data.input_shape),
        m["hidden"],
        head.outputs,
        activation=m["activation"],
        dropout=m["dropout"],
        norm=m["norm"],
        input_dropout=m["input_dropout"],
    ).to(device)
    init = init_from(model, m["init_from"], data.names, device) if m["init_from"] and load_init else None
    frozen = resolve_freeze(m["freeze"], model)
    if frozen:
        model.freeze(frozen)
    spec = dict(resolved["optimizer"])
    head_lr_mult = spec.pop("head_lr_mult")
    if spec["lr"] == "auto":
        spec["lr"] = resolved["lr_find"]["start_lr"]
    optimizer = instantiate(fused_on_cuda(spec, device), _convert_="all")(param_groups(model, spec["lr"], head_lr_mult))
    penalty = None
    if lc["l1"] or lc["l2"]:
        penalty = partial(weight_penalty, penalized_weights(model), l1=lc["l1"], l2=lc["l2"], m=len(data.train))
    return Setup(
        resolved=resolved,
        device=device,
        amp=amp,
        rng=rng,
        data=data,
        head=head,
        class_weights=class_weights,
        train_counts=train_counts,
        model=model,
        optimizer=optimizer,
        penalty=penalty,
        train_batches=Batcher(
            data.train.x,
            data.train.y,
            t["batch_size"] // (world.size if world else 1),
            weights=train_w,
            shuffle=True,
            generator=rng,
            shard=(world.rank, world.size) if world else None,
        ),
        val_batches=Batcher(data.val.x, data.val.y, t["eval_batch_size"]),
        test_batches=Batcher(data.test.x, data.test.y, t["eval_batch_size"]),
        init=init,
        frozen=frozen,
        threads=threads,
    )


def facts(setup: Setup, run_dir: Path, *, optim: str, schedule: str) -> list[tuple[str, str]]:
    """The header's lines: data, source, model, loss, optimizer, schedule, device, run dir."""
    t, d, m, lc = (setup.resolved[k] for k in ("trainer", "dataset", "model", "loss"))
    data, head = setup.data, setup.head
    in_features = math.prod(data.input_shape)
    params, trainable = count_params(setup.model)
    shape = "×".join(map(str, data.input_shape)) if len(data.input_shape) > 1 else f"{in_features} features"
    counted = f"{params:,} parameters" + (
        f" ({trainable:,} trainable, {params - trainable:,} frozen: layer{'s' if len(setup.frozen) > 1 else ''} "
        f"{', '.join(map(str, setup.frozen))})"
        if setup.frozen
        else ""
    )
    return [
        (
            "data",
            f"{d['name']}: train {len(data.train):,} · val {len(data.val):,} · test {len(data.test):,} · "
            f"{shape} · {describe_task(data)}",
        ),
        ("source", data.source),
        *(("", note) for note in data.notes),
        (
            "model",
            describe_model(m["hidden"], m["activation"], m["dropout"], m["norm"], in_features, head.outputs)
            + f" · {counted}",
        ),
        *([("init", setup.init.describe())] if setup.init is not None else []),
        ("loss", describe_loss(lc, head, setup.class_weights, data.train.w is not None)),
        ("optim", optim),
        ("schedule", schedule),
        *(
            [
                (
                    "stopping",
                    f"early stopping: after {t['early_stopping']['patience']} epoch(s) without an improvement of "
                    f"{t['early_stopping']['metric']} by more than {t['early_stopping']['min_delta']:g}",
                )
            ]
            if t["early_stopping"]["patience"] is not None
            else []
        ),
        (
            "device",
            f"{setup.device} · {'bf16 autocast' if setup.amp else 'fp32'}{' · torch.compile' if t['compile'] else ''} · torch {torch.__version__} · "
            f"{setup.threads.describe() if setup.threads else f'{torch.get_num_threads()} threads'} · seed {t['seed']}",
        ),
        ("run dir", shown(run_dir)),
    ]


def restore(setup: Setup, scheduler: Any, ckpt: Checkpoint) -> tuple[FitState, str | None]:
    """Put the checkpoint's weights, optimizer, scheduler and loop state back, and the random
    streams last, so the next step is the one the interrupted run would have taken. On another
    kind of device (cpu ↔ cuda) the device's random streams cannot carry over: the run goes on
    from the same state with fresh ones, and the returned note says so."""
    state = ckpt.state
    load_strict(setup.model, ckpt, "this run's model")
    try:  # the state is data from a file: anything torch or FitState refuses is a damaged or foreign checkpoint
        setup.optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        progress = FitState.from_tree(state["fit"])
        progress.perm = None if progress.perm is None else progress.perm.to(setup.device)
        progress.best_state = {k: v.to(setup.device) for k, v in progress.best_state.items()}
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
        raise AnnkitError(
            f"{shown(ckpt.path)} holds a training state this run cannot go on from ({type(err).__name__}: {err}): it was "
            f"damaged or not written by annkit. Nothing was trained or changed. Resume from an unedited checkpoint, or "
            f"start a new run from its weights: `{command('train', override('model.init_from', shown(ckpt.path)))}`."
        ) from None
    was = torch.device(ckpt.meta.get("device", str(setup.device)))
    if was.type == setup.device.type:
        try:
            set_rng_state(state["rng"], [setup.rng])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            raise AnnkitError(
                f"{shown(ckpt.path)} holds random-number states this run cannot take ({err}): it was damaged "
                f"or not written by annkit. Resume from an unedited checkpoint."
            ) from None
        return progress, None
    return progress, (
        f"resumed on {setup.device} a run that was on {was}: its {was.type} random streams (shuffling, "
        f"augmentation, dropout) cannot carry over, so the run goes on from the same state with fresh ones "
        f"— it continues, but not bit for bit as it would have on {was}."
    )


# ── the task ────────────────────────────────────────────────────────────────────────────────────


def train(
    cfg: DictConfig, run_dir: Path, console: Console | None = None, overrides: list[str] | None = None, jobs: int = 1
) -> dict[str, Any]:
    """Train the configured model; write checkpoints, TensorBoard events and metrics.json into ``run_dir``.

    With ``optimizer.lr=auto`` the LR range test (:mod:`annkit.tasks.lr_find`) runs first on the
    built model, which it leaves untouched, and training uses its suggestion (and, for a one-cycle
    schedule whose max_lr follows optimizer.lr, the top of its band as max_lr). With ``resume`` it
    goes on from a checkpoint of this run dir, exactly where that run stopped. ``overrides`` (the
    command line's) are kept in the checkpoints, for resume; ``jobs``: how many runs share the machine
    (a joblib sweep), which sets torch's threads under ``trainer.threads=auto``."""
    started = time.perf_counter()
    resolved = validate(cfg)  # every key checked before any data is read
    overrides = rewritten(
        [o for o in overrides or [] if key_of(o) != "resume"], path_values(resolved)
    )  # paths absolute
    world = world_from_env()
    if world is not None:
        check_distributed(resolved, world)
    console = (console or Console()) if world is None or world.main else Console(file=io.StringIO())
    ckpt = None
    if resolved["resume"] is not None:
        ckpt = open_resume(resolved["resume"], run_dir)
        resolved = resumed_config(resolved, ckpt)
    elif world is None or world.main:  # the cli checked before Hydra made the folder; this guards the API too
        protect(
            run_dir,
            task="train",
            sweep=False,
            overwrite=resolved["trainer"]["overwrite"],
            overwrite_key="trainer.overwrite",
        )
    t = resolved["trainer"]
    setup = build(resolved, load_init=ckpt is None, jobs=jobs, world=world)
    best_metric = task_metric(t["best_metric"], setup.data.task, "trainer.best_metric")
    stop_metric = task_metric(t["early_stopping"]["metric"], setup.data.task, "trainer.early_stopping.metric")
    tensorboard = None
    if world is None or world.main:  # only rank 0 logs
        tensorboard = TensorBoardLogger(
            run_dir / "tb",
            OmegaConf.to_yaml(OmegaConf.create(resolved)),
            purge_step=None if ckpt is None else ckpt.meta["step"] + 1,
        )
    try:
        metrics = _train(
            setup, ckpt, run_dir, console, tensorboard, started, best_metric, stop_metric, overrides, world
        )
    finally:
        if tensorboard is not None:
            tensorboard.close()
    if world is not None:  # after success only: a failed rank exits, and torchrun stops the others
        distributed.finish()
    return metrics


def check_distributed(resolved: dict[str, Any], world: World) -> None:
    """What a torchrun run cannot do (yet), refused before any data is read."""
    t = resolved["trainer"]
    refused = [
        (resolved["resume"] is not None, "resume= (resume the run in one process: `annkit train resume=…`)"),
        (
            resolved["optimizer"]["lr"] == "auto",
            "optimizer.lr=auto (run `annkit lr-find` first, in one process, and give its suggestion as optimizer.lr)",
        ),
        (
            t["nan_policy"] == "skip_batch",
            "trainer.nan_policy=skip_batch (a skipped batch on one rank would stall "
            "the others' all-reduce; use trainer.nan_policy=stop)",
        ),
    ]
    for bad, what in refused:
        if bad:
            raise AnnkitError(f"This run is one of {world.size} torchrun processes, which does not support {what}.")
    if t["batch_size"] % world.size:
        raise AnnkitError(
            f"trainer.batch_size={t['batch_size']} is the global batch, split evenly over the {world.size} torchrun "
            f"processes, so it must be a multiple of {world.size}. Set e.g. trainer.batch_size="
            f"{max(world.size, t['batch_size'] // world.size * world.size)}."
        )


def _train(
    setup: Setup,
    ckpt: Checkpoint | None,
    run_dir: Path,
    console: Console,
    tensorboard: TensorBoardLogger | None,
    started: float,
    best_metric: str,
    stop_metric: str,
    overrides: list[str],
    world: World | None = None,
) -> dict[str, Any]:
    resolved = setup.resolved
    t, m, lc = resolved["trainer"], resolved["model"], resolved["loss"]
    data, head, model, optimizer = setup.data, setup.head, setup.model, setup.optimizer
    found = None
    if resolved["optimizer"]["lr"] == "auto":
        from annkit.tasks.lr_find import apply_suggestion, find_lr

        found = find_lr(setup, console, run_dir, tensorboard)
        apply_suggestion(setup, found)
    train_batches = setup.train_batches
    scheduler, interval = build_scheduler(
        resolved["scheduler"], optimizer, epochs=t["epochs"], steps_per_epoch=len(train_batches)
    )

    params, trainable = count_params(model)
    sched_name = "constant lr" if scheduler is None else f"{type(scheduler).__name__} (per {interval})"
    if scheduler is None and resolved["scheduler"]["_target_"] is not None:
        sched_name += (
            f" (scheduler=auto: {t['epochs'] * len(train_batches)} steps are too few to warm up a one-cycle "
            f"schedule; scheduler=onecycle insists)"
        )
    if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        sched_name += f" to max_lr {resolved['scheduler']['max_lr']:g}"
    every = t["print_every"] if t["print_every"] != "auto" else max(1, math.ceil(t["epochs"] / 50))
    reporter = ConsoleReporter(console, task=data.task, penalty=setup.penalty is not None, print_every=every)
    lr_note = f" (lr-find: {found.describe()})" if found is not None else ""
    groups = optimizer.param_groups
    head_note = (
        f" · output layer lr × {groups[-1]['lr_mult']:g}" if len(groups) > 1 or groups[0].get("lr_mult", 1) != 1 else ""
    )
    resumed: list[dict[str, Any]] = list(ckpt.meta.get("resumed", [])) if ckpt is not None else []
    header = facts(
        setup,
        run_dir,
        optim=f"{type(optimizer).__name__} lr {resolved['optimizer']['lr']:g}{lr_note}{head_note} · {sched_name}",
        schedule=f"{t['epochs']} epochs × {len(train_batches)} steps of {t['batch_size']}",
    )
    if world is not None:
        header.append(
            (
                "ddp",
                f"{world.size} processes ({distributed.backend()}, {setup.device.type}) · global batch "
                f"{t['batch_size']} = {world.size} × {t['batch_size'] // world.size} per rank · lr as set: the "
                f"same effective batch as one process (raising trainer.batch_size with the processes? "
                f"scale the lr by the same factor, the linear scaling rule)",
            )
        )
    if ckpt is not None:
        where = (
            f"epoch {ckpt.meta['epoch'] + (1 if ckpt.meta['batch'] else 0)}, batch {ckpt.meta['batch']} of {len(train_batches)}"
            if ckpt.meta["batch"]
            else f"the end of epoch {ckpt.meta['epoch']}"
        )
        header.append(("resume", f"from {shown(ckpt.path)} at {where} (step {ckpt.meta['step']})"))
        resumed.append(
            {
                "from": str(ckpt.path),
                "epoch": ckpt.meta["epoch"],
                "batch": ckpt.meta["batch"],
                "step": ckpt.meta["step"],
            }
        )
    layers = summarize(model, data.input_shape)
    reporter.header(header, layers, params)
    if setup.init is not None:
        reporter.print(init_table(setup.init, model.state_dict()))
    warnings = [w for w in [zero_gradient_warning(m["hidden"], m["activation"])] if w]
    if setup.frozen and not m["init_from"]:
        warnings.append(
            f"model.freeze keeps layer(s) {setup.frozen} at their random initial weights (there is no "
            f"model.init_from): they act as a fixed random feature map."
        )
    if found is not None:
        warnings += [f"lr-find: {text}" for text in found.problems().values()]
    empty = [name for name, n in zip(data.names, setup.train_counts) if n == 0]
    if empty:
        warnings.append(
            f"{len(empty)} class(es) have no training samples ({', '.join(empty)}): the network can never learn "
            f"to predict them, and their validation recall stays 0. Check dataset.class_fraction, "
            f"dataset.limit_train and the data itself."
        )
    for note in warnings:
        reporter.warn(note)
    if ckpt is None and tensorboard is not None:
        tensorboard.describe(data.task, setup.penalty is not None, model_markdown(layers, params, trainable))
        tensorboard.scalar("params/trainable", trainable, 0)
        tensorboard.scalar("params/frozen", params - trainable, 0)
        if setup.init is not None:
            tensorboard.text("init_from", report_markdown(setup.init, model.state_dict()), 0)

    meta = {
        "config": resolved,
        "overrides": overrides,
        "data": {
            "name": resolved["dataset"]["name"],
            "task": data.task,
            "classes": list(data.names),
            "input_shape": list(data.input_shape),
            "preprocessing": data.preprocessing,
            "output_activation": head.output,
            **({"files": data.files} if data.files else {}),
        },
        "resumed": resumed,
        "device": str(setup.device),
    }
    lr_found = found.summary() if found is not None else ckpt.meta.get("lr_find") if ckpt is not None else None
    if lr_found is not None:
        meta["lr_find"] = lr_found  # a resumed run reports the search its first part made
    progress = FitState()
    elapsed_before = 0.0
    if ckpt is not None:
        elapsed_before = ckpt.state.get("elapsed_s", 0.0)
        progress, note = restore(setup, scheduler, ckpt)  # the random streams last: nothing may draw after this
        if note:
            warnings.append(note)
            reporter.warn(note)

    def capture() -> dict[str, Any]:
        return {
            "fit": progress.tree(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state([setup.rng]),
            "elapsed_s": elapsed_before + time.perf_counter() - started,
        }

    checkpointer = Checkpointer(
        run_dir / "checkpoints", model, meta, capture, progress, keep_last=t["checkpoint"]["keep_last"]
    )
    dashboard = make_dashboard(setup, tensorboard) if tensorboard is not None else None
    # saved first, announced last: a row on screen means its checkpoint is on disk; other ranks: no hooks
    trend = LossTrend()  # the loss by lr, for the advice after a divergence
    hooks = (
        [checkpointer, tensorboard, dashboard, reporter, trend]
        if tensorboard is not None and dashboard is not None
        else [trend]
    )
    if setup.threads is not None and setup.threads.governed and world is None:
        setup.threads.notify = lambda text: reporter.print(Text(text, style="dim"))
        hooks.append(setup.threads)
    ddp: dict[str, Any] = {}
    step_module: torch.nn.Module = model
    if world is not None:  # torchrun: steps through DDP (gradients all-reduced), sums and buffers shared
        from torch.nn.parallel import DistributedDataParallel

        step_module = DistributedDataParallel(model, device_ids=[setup.device] if setup.device.type == "cuda" else None)
        ddp = {"reduce": distributed.all_sum, "sync": partial(distributed.broadcast_buffers, model)}
    if t["compile"]:  # the training steps through torch.compile (the first steps compile; evaluation runs eager)
        step_module = torch.compile(step_module)
    # Ctrl-C under torchrun: torchrun stops every rank (resume from the last epoch's checkpoint, in one process)
    with StopSignals() if world is None else contextlib.nullcontext() as stop:
        result = fit(
            model,
            optimizer,
            train_batches,
            setup.val_batches,
            head=head,
            epochs=t["epochs"],
            prepare=data.prepare,
            reduction=lc["reduction"],
            penalty=setup.penalty,
            scheduler=scheduler,
            scheduler_interval=interval,
            grad_clip=t["grad_clip"],
            autocast_dtype=setup.amp,
            best_metric=best_metric,
            early_stopping=EarlyStopping(
                stop_metric, t["early_stopping"]["patience"], t["early_stopping"]["min_delta"]
            ),
            log_every=t["log_every"],
            state=progress,
            nan_policy=t["nan_policy"],
            should_stop=stop,
            save_every=t["checkpoint"]["every_n_steps"],
            hooks=hooks,
            train_module=step_module,
            **ddp,
        )
        if result.diverged is not None:
            raise TrainingDiverged(
                diverged_message(result.diverged, trend, run_dir, len(train_batches), t["nan_policy"], overrides)
            )
        if result.interrupted:  # still inside StopSignals: a second signal during the save stops at once, cleanly
            last = checkpointer.save()
            raise Interrupted(
                f"{stop.name} at epoch {progress.epoch + (1 if progress.batch else 0)} of {t['epochs']}, batch "
                f"{progress.batch} of {len(train_batches)} (step {progress.step}). The state after that step is in "
                f"{shown(last)}. Go on with:",
                stop.exit_code,
                command=command("train", override("resume", shown(run_dir))),
            )
    model.load_state_dict(result.best_state)
    test = evaluate(model, setup.test_batches, head=head, prepare=data.prepare, autocast_dtype=setup.amp)
    for note in result_warnings(
        result.history,
        result.best_val,
        task=data.task,
        loss=lc["name"],
        k=data.num_classes,
        lr=float(resolved["optimizer"]["lr"]),
    ):
        warnings.append(note)
        reporter.warn(note)

    best = result.history[result.best_epoch - 1]
    wall = elapsed_before + time.perf_counter() - started
    metrics: dict[str, Any] = {
        "task": data.task,
        "names": list(data.names),
        "train": {k.split("/", 1)[1]: v for k, v in best.items() if k.startswith("train/")},
        "val": result.best_val,
        "test": test,
        "best_epoch": result.best_epoch,
        "best_metric": best_metric,
        "epochs": len(result.history),
        "stopped_early": result.stopped_early,
        "wall_s": wall,
        "train_s": result.train_seconds,
        "samples_per_s": result.samples_seen / result.train_seconds,
        "device": str(setup.device),
        "threads": torch.get_num_threads(),
        **({"thread_changes": setup.threads.changes} if setup.threads is not None and setup.threads.changes else {}),
        "compiled": t["compile"],
        "pid": os.getpid(),
        "started_at": time.time() - (time.perf_counter() - started),  # this process's part (unix time)
        "finished_at": time.time(),
        "precision": "bf16" if setup.amp else "fp32",
        "params": params,
        "trainable_params": trainable,
        "frozen_layers": setup.frozen,
        "class_weights": setup.class_weights,
        "nan_policy": t["nan_policy"],
        "skipped_batches": result.skipped,
        "warnings": warnings,
        "torch": torch.__version__,
        "annkit": __version__,
        "python": platform.python_version(),
        "data": {
            "name": resolved["dataset"]["name"],
            "source": data.source,
            "train": len(data.train),
            "val": len(data.val),
            "test": len(data.test),
            "notes": data.notes,
            **({"files": data.files} if data.files else {}),
            **({"train_class_counts": dict(zip(data.names, setup.train_counts))} if setup.train_counts else {}),
        },
        **({"lr_find": lr_found} if lr_found is not None else {}),
        **({"init_from": setup.init.summary()} if setup.init is not None else {}),
        **({"resumed": resumed} if resumed else {}),
        "history": result.history,
    }
    final = {f"final/test_{k}": v for k, v in scalars(test).items() if "/" not in k}
    final.update({f"final/val_{k}": v for k, v in scalars(result.best_val).items() if "/" not in k})
    final.update({f"final/train_{k}": v for k, v in metrics["train"].items()})
    final.update({"final/best_epoch": float(result.best_epoch), "final/wall_s": metrics["wall_s"]})
    if t["nan_policy"] == "skip_batch":
        final["final/skipped_batches"] = float(result.skipped)
    if world is not None:  # every rank takes part; the ranks must hold the same weights
        metrics["ddp"] = {
            "world_size": world.size,
            "backend": distributed.backend(),
            "global_batch": t["batch_size"],
            "per_rank_batch": t["batch_size"] // world.size,
            "max_weight_difference": distributed.max_difference(model),
        }
    if tensorboard is None or dashboard is None:
        return metrics  # a rank other than 0: nothing to write
    if data.task == "classification":
        tensorboard.text(
            "test/confusion_matrix", confusion_markdown(test["confusion_matrix"], data.names), len(result.history)
        )
    dashboard.test(test, len(result.history))
    hparams, varying = hparam_values(flatten(resolved), overrides)
    tensorboard.finish(hparams, final, step=len(result.history), varying=varying)
    metrics["logging_s"] = tensorboard.seconds + dashboard.seconds  # scalars, texts, pictures, hparams (this process)
    atomic_write_bytes(
        run_dir / "metrics.json", json.dumps(finite_or_null(metrics), indent=2, allow_nan=False).encode()
    )
    reporter.summary(metrics, run_dir)
    return metrics


def make_dashboard(setup: Setup, tensorboard: TensorBoardLogger) -> Dashboard:
    """The pictures of ``logger.*``: confusion matrices, decision boundaries of 2-D data (the
    playground's plane, or a table's two columns), misclassified images, histograms."""
    lg, data = setup.resolved["logger"], setup.data
    epochs = setup.resolved["trainer"]["epochs"]
    plane = data.plane
    if plane is None and data.input_shape == (2,) and data.task != "multilabel":
        names = data.preprocessing.get("features") or ["x1", "x2"]
        plane = table_plane({"train": data.train.x, "test": data.test.x}, (str(names[0]), str(names[1])))
    labels = (
        {split: getattr(data, split).y.cpu().numpy() for split in ("train", "val", "test")}
        if plane is not None
        else None
    )
    every = lg["images_every"] if lg["images_every"] != "auto" else max(1, math.ceil(epochs / 5))
    return Dashboard(
        tensorboard.writer,
        setup.model,
        setup.head,
        names=data.names,
        prepare=data.prepare,
        val=(data.val.x, data.val.y),
        plane=plane,
        labels=labels,
        images=len(data.input_shape) >= 2,
        images_every=every,
        confusion=lg["confusion"],
        histograms_every=lg["histograms_every"] if lg["histograms"] else 0,
        misclassified=lg["misclassified"],
        resolution=lg["boundary_resolution"],
        epochs=epochs,
    )


def init_table(report: InitReport, model_state: dict[str, torch.Tensor]) -> Table:
    table = Table(
        title="model.init_from, tensor by tensor",
        title_justify="left",
        title_style="bold",
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    for name in ("tensor", "shape", "checkpoint", "status"):
        table.add_column(name, justify="right" if name in ("shape", "checkpoint") else "left")
    for name, here, there, status in report.rows(model_state):
        style = "green" if status == "loaded" else "yellow" if status.startswith("fresh") else "dim"
        table.add_row(name, here, there, f"[{style}]{status}[/]")
    return table


def diverged_message(
    where: dict[str, Any], trend: LossTrend, run_dir: Path, steps: int, nan_policy: str, overrides: list[str]
) -> str:
    """What happened (step, epoch, lr), what is kept, and what to try."""
    last = run_dir / "checkpoints" / "last.safetensors"
    good = peek(last).meta if last.is_file() else None
    kept = (
        f"{shown(last)} holds the last good state (epoch {good['epoch']}, step {good['step']})"
        if good is not None
        else "no checkpoint had been written yet"
    )
    return (
        f"{diverged_text(where, steps, kept)} "
        f"{divergence_advice(where, trend.points, nan_policy=nan_policy, overrides=overrides)}"
    )


def prepare_argv(args: list[str]) -> list[str]:
    """The cli calls this before Hydra: ``resume=`` picks the run's dir and overrides; under torchrun
    a rank other than 0 gets a throw-away run dir."""
    return distributed.rank_argv(resume_argv(args))


def run(cfg: DictConfig) -> float:
    """One run; returns its :func:`objective`, which Hydra's sweepers (Optuna) read. In a sweep, a
    run whose loss diverged returns NaN (Optuna records a failed trial) and the sweep goes on."""
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    with user_errors(interrupted=lambda: go_on_note(run_dir, shown(run_dir))):
        try:
            metrics = train(cfg, run_dir, overrides=list(hc.overrides.task), jobs=parallel_jobs(hc.launcher))
        except TrainingDiverged as err:
            if hc.mode != RunMode.MULTIRUN:
                raise
            print_error(
                f"job {hc.job.num} ({' '.join(hc.overrides.task)}): {err} The sweep goes on; this job's "
                f"objective is NaN.",
                label="warning",
            )
            return math.nan
    return objective(metrics)
