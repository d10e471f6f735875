"""Config → objects: what ``annkit train`` and ``annkit lr-find`` build from one validated config.

This is the task layer's wiring (it reads the config; nothing it calls does): the machine a run uses (device,
precision, random streams, threads), the problem (data, head, class weights, batchers), the network (model with
``model.init_from`` and ``model.freeze``, optimizer, penalty), the training step and the loop's policy, the
scheduler, the pictures, the LR search's settings, and a resumed run's state. The order of the calls in
:func:`build` is the random-number draw order of a run (data first, then the model's initial weights): keep it.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from hydra.utils import get_class, instantiate

from annkit import distributed
from annkit.checkpoint import Checkpoint, load_strict
from annkit.commands import command, override, shown
from annkit.data import Batcher, Data, load_data
from annkit.distributed import World
from annkit.errors import AnnkitError
from annkit.finetune import InitReport, init_from, param_groups, resolve_freeze
from annkit.fit_state import EarlyStopping, FitState
from annkit.hand_weights import read_weights, set_weights
from annkit.head import Head, check_task_and_loss
from annkit.loop import Collective, Penalty, Policy, Step
from annkit.losses import (
    balanced_class_weights,
    penalized_weights,
    perceptron_criterion,
    sample_weights,
    weight_penalty,
)
from annkit.lr_search import SearchSettings
from annkit.memory import check_fits, optimizer_slots, planned_inputs, widths_of
from annkit.models import MLP
from annkit.runtime import Threads, autocast_dtype, generator, resolve_device, seed_everything, set_rng_state
from annkit.schema import TASK_METRICS


@dataclass
class Machine:
    """Where and how a run computes."""

    device: torch.device
    amp: torch.dtype | None  # autocast's dtype (bf16), or None: fp32
    rng: torch.Generator  # shuffling and augmentation (dropout and init use torch's global stream)
    threads: Threads | None = None  # torch's CPU threads (and their governor under trainer.threads=auto)


@dataclass
class Problem:
    """What a run learns from: the data, the head that turns outputs into a loss and predictions, the weights."""

    data: Data
    head: Head
    class_weights: list[float] | None
    train_counts: list[int]  # samples per class in the training split (classification)
    train: Batcher
    val: Batcher
    test: Batcher


@dataclass
class Network:
    """What a run trains: the model, its optimizer and penalty, and where its first weights came from."""

    model: MLP
    optimizer: torch.optim.Optimizer
    penalty: Penalty | None
    init: InitReport | None = None  # what model.init_from loaded
    frozen: list[int] = field(default_factory=list)  # dense layers kept fixed (model.freeze)


@dataclass
class Built:
    machine: Machine
    problem: Problem
    network: Network
    step: Step  # the training step both fit and the LR search take


def build(cfg: dict[str, Any], *, load_init: bool = True, jobs: int = 1, world: World | None = None) -> Built:
    """Seed, load the data, and build the head, model, optimizer, penalty, batchers and step of a validated config.
    With ``optimizer.lr=auto`` the optimizer starts at lr_find.start_lr (the search sets every rung's lr, then
    the task sets the lr it chose). ``load_init=False`` skips init_from (a resumed run loads its own weights);
    ``jobs``: the sweep jobs running at once (they share the cores); ``world``: under torchrun, this rank's place."""
    trainer = cfg["trainer"]
    machine = build_machine(cfg, jobs=jobs, world=world)
    data = load_data(cfg["dataset"], seed=trainer["seed"], device=machine.device, generator=machine.rng)
    if world is None and machine.threads is not None:
        machine.threads.settle()  # trainer.threads=auto: the cores other processes left free while the data loaded
    problem = build_problem(cfg, data, machine, world)
    network = build_network(cfg, problem, machine.device, load_init=load_init)
    rule = perceptron(cfg)  # the perceptron criterion, summed: each sample's update in full
    step = Step(problem.head, data.prepare, reduction="sum" if rule else cfg["loss"]["reduction"],
                penalty=network.penalty, autocast_dtype=machine.amp, grad_clip=trainer["grad_clip"],
                criterion=perceptron_criterion if rule else None)  # fmt: skip
    return Built(machine, problem, network, step)


def build_machine(cfg: dict[str, Any], *, jobs: int, world: World | None) -> Machine:
    """The device (under torchrun: this rank's, with the process group up), a memory check of the planned model,
    the seeds, autocast, and the shuffling generator."""
    trainer, model = cfg["trainer"], cfg["model"]
    threads = Threads(trainer["threads"], world.local_size if world is not None else jobs)
    device = resolve_device(trainer["device"])
    if world is not None:
        device = distributed.init(world, device)
    in_features, outputs = planned_inputs(cfg["dataset"])  # known from the config (a table's header), before any data
    check_fits(widths_of(in_features, model["hidden"], outputs), device, norm=model["norm"] != "none",
               batch=trainer["batch_size"], eval_batch=trainer["eval_batch_size"],
               slots=optimizer_slots(cfg["optimizer"]), what="Training this model")  # fmt: skip
    seed_everything(trainer["seed"], trainer["deterministic"])
    amp = autocast_dtype(trainer["precision"], device)
    return Machine(device, amp, generator(device, trainer["seed"] + 1), threads)


def build_problem(cfg: dict[str, Any], data: Data, machine: Machine, world: World | None) -> Problem:
    """The head (checked against the data's task), the class and sample weights, and the three batchers."""
    loss, trainer, name = cfg["loss"], cfg["trainer"], cfg["dataset"]["name"]
    output = check_task_and_loss(data.task, data.num_classes, loss["name"], cfg["model"]["output_activation"], name)
    own = {k: v for k, v in loss.items() if k in ("label_smoothing", "pos_weight")}  # the keys only ce / bce have
    head = Head(data.task, data.names, loss["name"], output, device=machine.device, **own)
    if head.pos_weight is not None and len(head.pos_weight) not in (1, head.outputs):
        raise AnnkitError(
            f"loss.pos_weight has {len(head.pos_weight)} values, but the model has {head.outputs} output(s): give one "
            f"number, or one per label ({', '.join(data.names)})."
        )
    counts = torch.bincount(data.train.y, minlength=data.num_classes).tolist() if data.task == "classification" else []
    class_weights = resolve_class_weights(loss["class_weights"], data, counts, name)
    train = Batcher(data.train.x, data.train.y, trainer["batch_size"] // (world.size if world else 1),
                    weights=sample_weights(data.train.y, class_weights, data.train.w), shuffle=True,
                    generator=machine.rng, shard=(world.rank, world.size) if world else None)  # fmt: skip
    val = Batcher(data.val.x, data.val.y, trainer["eval_batch_size"])
    test = Batcher(data.test.x, data.test.y, trainer["eval_batch_size"])
    return Problem(data, head, class_weights, counts, train, val, test)


def build_network(cfg: dict[str, Any], problem: Problem, device: torch.device, *, load_init: bool) -> Network:
    """The model (its initial weights drawn here), model.init_from and model.freeze, the optimizer, the penalty."""
    model_cfg, loss, data = cfg["model"], cfg["loss"], problem.data
    if perceptron(cfg):
        check_perceptron(cfg, problem)
    if model_cfg["norm"] == "batch" and len(data.train) < 2:
        raise AnnkitError(
            f"model.norm=batch needs at least 2 training samples, but the training split holds {len(data.train)}. "
            f"Use more training data, or model.norm=layer / none."
        )
    model = MLP(math.prod(data.input_shape), model_cfg["hidden"], problem.head.outputs, activation=model_cfg["activation"],
                dropout=model_cfg["dropout"], norm=model_cfg["norm"], input_dropout=model_cfg["input_dropout"]).to(device)  # fmt: skip
    init = (
        init_from(model, model_cfg["init_from"], data.names, device) if model_cfg["init_from"] and load_init else None
    )
    if model_cfg["weights"] is not None and load_init:
        set_weights(model, read_weights(model_cfg["weights"]))
    frozen = resolve_freeze(model_cfg["freeze"], model)
    if frozen:
        model.freeze(frozen)
    spec = dict(cfg["optimizer"])
    head_lr_mult, _ = spec.pop("head_lr_mult"), spec.pop("rule")
    if spec["lr"] == "auto":
        spec["lr"] = cfg["lr_find"]["start_lr"]  # a placeholder: the search sets each rung's lr, then the chosen one
    optimizer = instantiate(fused_on_cuda(spec, device), _convert_="all")(param_groups(model, spec["lr"], head_lr_mult))
    penalty = None
    if loss["l1"] or loss["l2"]:
        penalty = partial(weight_penalty, penalized_weights(model), l1=loss["l1"], l2=loss["l2"], m=len(data.train))
    return Network(model, optimizer, penalty, init, frozen)


def fused_on_cuda(spec: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """On CUDA, torch's fused (one-kernel) implementation of the optimizer when it has one (Adam,
    AdamW, SGD, …) and the config does not choose: the same update in fewer kernel launches."""
    if device.type != "cuda" or "fused" in spec:
        return spec
    cls = get_class(spec["_target_"])
    return {**spec, "fused": True} if "fused" in inspect.signature(cls).parameters else spec


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


def policy(cfg: dict[str, Any], task: str) -> Policy:
    """How fit runs this config: trainer.epochs, best_metric, early_stopping, log_every, checkpoint.every_n_steps
    and nan_policy."""
    trainer, stop = cfg["trainer"], cfg["trainer"]["early_stopping"]
    early = EarlyStopping(task_metric(stop["metric"], task, "trainer.early_stopping.metric"), stop["patience"],
                          stop["min_delta"])  # fmt: skip
    return Policy(epochs=trainer["epochs"], best_metric=task_metric(trainer["best_metric"], task, "trainer.best_metric"),
                  early_stopping=early, log_every=trainer["log_every"],
                  save_every=trainer["checkpoint"]["every_n_steps"], nan_policy=trainer["nan_policy"],
                  until_perfect="train/accuracy" if perceptron(cfg) else None)  # fmt: skip


def perceptron(cfg: dict[str, Any]) -> bool:
    """optimizer=perceptron: Rosenblatt's rule instead of backpropagation."""
    return cfg["optimizer"]["rule"] == "perceptron"


def check_perceptron(cfg: dict[str, Any], problem: Problem) -> None:
    """The perceptron rule trains one step neuron on two classes: refused on anything else, before training."""
    model, head = cfg["model"], problem.head
    why = None
    if model["hidden"]:
        why = (f"model.hidden={model['hidden']} adds hidden layers, whose weights the rule cannot reach (it needs each "
               f"neuron's own target, which only the output neuron has)")  # fmt: skip
    elif not head.single_output:
        why = (f"the network has {head.outputs} outputs ({head.task}, loss={head.loss}), not one step neuron: the rule "
               f"needs two classes and loss=bce (one output, ŷ = [z > 0])")  # fmt: skip
    elif cfg["optimizer"]["lr"] == "auto":
        why = "optimizer.lr=auto has no meaning for it (the rule's steps do not follow a loss curve)"
    elif cfg["loss"]["l1"] or cfg["loss"]["l2"]:
        why = "loss.l1 / loss.l2 add a penalty the rule does not have"
    if why:
        raise AnnkitError(
            f"optimizer=perceptron trains a single step neuron with Rosenblatt's rule w ← w + η(y − ŷ)x, but {why}. "
            f"Use model.hidden=[] with loss=bce on two classes (e.g. annkit train experiment=perceptron_gates), or "
            f"train hidden layers by backpropagation: optimizer=adam."
        )


def search_settings(cfg: dict[str, Any]) -> tuple[SearchSettings, int]:
    """The LR search's settings and its first seed (lr_find.seed, or trainer.seed when null)."""
    settings = SearchSettings(**cfg["lr_find"])
    return settings, settings.seed if settings.seed is not None else cfg["trainer"]["seed"]


def reseeder(cfg: dict[str, Any], rng: torch.Generator) -> Any:
    """``reseed(seed)``: one sweep's random streams, seeded as a run is: Python, NumPy and torch (dropout), and the
    shuffling/augmentation generator at seed + 1."""

    def reseed(seed: int) -> None:
        seed_everything(seed, cfg["trainer"]["deterministic"])
        rng.manual_seed(seed + 1)

    return reseed


def training_module(model: MLP, device: torch.device, *, ddp: bool, compile: bool) -> tuple[Any, Collective | None]:
    """What the training steps call: under torchrun the model's DistributedDataParallel wrapper (gradients
    all-reduced; the sums and buffers shared through the returned :class:`Collective`), and with trainer.compile
    torch.compile of it (the first steps compile; evaluation runs eager)."""
    module, collective = model, None
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        module = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        collective = Collective(distributed.all_sum, partial(distributed.broadcast_buffers, model))
    return (torch.compile(module) if compile else module), collective


def check_distributed(cfg: dict[str, Any], world: World) -> None:
    """What a torchrun run cannot do (yet), refused before any data is read."""
    trainer = cfg["trainer"]
    refused = [
        (cfg["resume"] is not None, "resume= (resume the run in one process: `annkit train resume=…`)"),
        (cfg["optimizer"]["lr"] == "auto", "optimizer.lr=auto (run `annkit lr-find` first, in one process, "
                                           "and give its suggestion as optimizer.lr)"),
        (trainer["nan_policy"] == "skip_batch", "trainer.nan_policy=skip_batch (a skipped batch on one rank would "
                                                "stall the others' all-reduce; use trainer.nan_policy=stop)"),
    ]  # fmt: skip
    for bad, what in refused:
        if bad:
            raise AnnkitError(f"This run is one of {world.size} torchrun processes, which does not support {what}.")
    if trainer["batch_size"] % world.size:
        raise AnnkitError(
            f"trainer.batch_size={trainer['batch_size']} is the global batch, split evenly over the {world.size} "
            f"torchrun processes, so it must be a multiple of {world.size}. Set e.g. trainer.batch_size="
            f"{max(world.size, trainer['batch_size'] // world.size * world.size)}."
        )


def restore(built: Built, scheduler: Any, ckpt: Checkpoint) -> tuple[FitState, str | None]:
    """Put the checkpoint's weights, optimizer, scheduler and loop state back, and the random
    streams last, so the next step is the one the interrupted run would have taken. On another
    kind of device (cpu ↔ cuda) the device's random streams cannot carry over: the run goes on
    from the same state with fresh ones, and the returned note says so."""
    state, device = ckpt.state, built.machine.device
    load_strict(built.network.model, ckpt, "this run's model")
    try:  # the state is data from a file: anything torch or FitState refuses is a damaged or foreign checkpoint
        built.network.optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        progress = FitState.from_tree(state["fit"])
        progress.perm = None if progress.perm is None else progress.perm.to(device)
        progress.best_state = {k: v.to(device) for k, v in progress.best_state.items()}
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
        raise AnnkitError(
            f"{shown(ckpt.path)} holds a training state this run cannot go on from ({type(err).__name__}: {err}): it was "
            f"damaged or not written by annkit. Nothing was trained or changed. Resume from an unedited checkpoint, or "
            f"start a new run from its weights: `{command('train', override('model.init_from', shown(ckpt.path)))}`."
        ) from None
    was = torch.device(ckpt.meta.get("device", str(device)))
    if was.type != device.type:
        return progress, (
            f"resumed on {device} a run that was on {was}: its {was.type} random streams (shuffling, "
            f"augmentation, dropout) cannot carry over, so the run goes on from the same state with fresh ones "
            f"— it continues, but not bit for bit as it would have on {was}."
        )
    try:
        set_rng_state(state["rng"], [built.machine.rng])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
        raise AnnkitError(
            f"{shown(ckpt.path)} holds random-number states this run cannot take ({err}): it was damaged "
            f"or not written by annkit. Resume from an unedited checkpoint."
        ) from None
    return progress, None
