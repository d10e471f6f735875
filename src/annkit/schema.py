"""The config's schema: every key annkit reads, the rule its value must meet and what it means.

Plain data and small predicates, importing nothing heavy (no torch), so that ``annkit --help``,
``annkit <task> --help`` and checking a checkpoint's stored command line stay fast.
:mod:`annkit.config` validates a composed config against it (adding the checks that need torch:
activations, optimizer and scheduler classes); :mod:`annkit.trust` checks what a checkpoint
stored; the help lists it. The names of things (tasks, reductions, norms, playground kinds …) live
here once, and the modules that implement them import them from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from annkit.errors import AnnkitError

# ── names that the config refers to (the modules that implement them import these) ──────────────
TASK_METRICS = {  # the scalar metrics each task reports (usable as trainer.best_metric / early_stopping.metric as val/<name>)
    "classification": ("loss", "accuracy", "balanced_accuracy"),
    "multilabel": ("loss", "accuracy", "macro_f1", "exact_match"),
    "regression": ("loss", "mse", "mae", "r2"),
}
REDUCTIONS = ("mean", "weighted_mean")  # annkit.losses
NORM_NAMES = ("none", "batch", "layer")  # annkit.models.NORMS
OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "softmax", "tanh")  # annkit.models
CSV_TASKS = ("auto", "classification", "regression", "multilabel")  # annkit.data.csv_table
GATES = {  # annkit.data.tabular: a gate's output for inputs (0,0), (0,1), (1,0), (1,1)
    "and": (0, 0, 0, 1),
    "or": (0, 1, 1, 1),
    "nand": (1, 1, 1, 0),
    "nor": (1, 0, 0, 0),
    "xor": (0, 1, 1, 0),
}
CLASSIFICATION_KINDS = ("circle", "xor", "gauss", "spiral")  # TF Playground's state.ts `datasets`
REGRESSION_KINDS = ("plane", "gauss")  # TF state.ts `regDatasets`: "reg-plane", "reg-gauss"
PLAYGROUND_TASKS = ("classification", "regression")  # TF state.ts `problems`
PLAYGROUND_FEATURES = ("x1", "x2", "x1_sq", "x2_sq", "x1_x2", "sin_x1", "sin_x2")  # annkit.data.playground.FEATURES

# every validation metric some task reports; train() checks that the chosen one exists for the data's task
METRICS = tuple(dict.fromkeys(f"val/{m}" for names in TASK_METRICS.values() for m in names))
# scheduler arguments a config may not set: annkit passes the optimizer and the schedule's length
# (total_steps or T_max), and OneCycleLR's epochs/steps_per_epoch would contradict total_steps
SCHEDULER_FILLED = {"total_steps", "T_max", "epochs", "steps_per_epoch", "optimizer"}
SCHEDULER_KEYS = {"interval", "if_too_short"}  # annkit's own keys inside the scheduler group
OPTIMIZER_KEYS = {"head_lr_mult"}  # and inside the optimizer group
HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


@dataclass(frozen=True)
class Rule:
    check: Callable[[Any], bool]
    expected: str


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(lo: int, hi: int | None = None, *, nullable: bool = False) -> Rule:
    bound = f"from {lo} to {hi}" if hi is not None else f"≥ {lo}"
    return Rule(
        lambda v: (nullable and v is None) or (_is_int(v) and v >= lo and (hi is None or v <= hi)),
        f"a whole number {bound}" + (" or null" if nullable else ""),
    )


def number(
    lo: float, hi: float | None = None, *, hi_open: bool = False, lo_open: bool = False, nullable: bool = False
) -> Rule:
    def ok(v: Any) -> bool:
        if nullable and v is None:
            return True
        if not _is_num(v) or v != v:
            return False
        above = v > lo if lo_open else v >= lo
        below = hi is None or (v < hi if hi_open else v <= hi)
        return above and below

    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    span = f"in {left}{lo}, {hi}{right}" if hi is not None else (f"> {lo}" if lo_open else f"≥ {lo}")
    return Rule(ok, f"a number {span}" + (" or null" if nullable else ""))


def choice(*options: str) -> Rule:
    return Rule(lambda v: v in options, "one of: " + ", ".join(options))


BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
TEXT = Rule(lambda v: isinstance(v, str) and v != "", "a non-empty string")
PATH_OR_NULL = Rule(lambda v: v is None or (isinstance(v, str) and v != ""), "a folder path or null")
TEXT_LIST = Rule(
    lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "a list of folder paths, e.g. [data/fashion_mnist]",
)
WIDTHS = Rule(
    lambda v: isinstance(v, list) and all(_is_int(x) and x >= 1 for x in v),
    "a list of positive layer widths, e.g. [512, 256], or [] for no hidden layer",
)
DEVICE = Rule(
    lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None,
    "one of: auto, cpu, cuda, cuda:N, mps",
)
PROBABILITY = number(0.0, 1.0, hi_open=True)


SHARE = number(0.0, 1.0)
SHARE_OPEN = number(0.0, 1.0, lo_open=True, hi_open=True)
NONNEG_LIST = Rule(
    lambda v: isinstance(v, list) and len(v) >= 1 and all(_is_num(x) and x >= 0 for x in v) and any(x > 0 for x in v),
    "a list of numbers ≥ 0, not all 0",
)
SPLIT_SIZE = Rule(
    lambda v: (_is_int(v) and v >= 0) or (isinstance(v, float) and 0 <= v < 1),
    "a number of rows (a whole number ≥ 0) or a share of them (a number in [0, 1))",
)
COLUMNS = Rule(
    lambda v: (
        (isinstance(v, str) and v != "")
        or (isinstance(v, list) and len(v) >= 1 and all(isinstance(x, str) and x for x in v))
    ),
    "a column name, or a list of column names",
)

MODEL_SCHEMA: dict[str, Any] = {
    "name": TEXT,
    "hidden": WIDTHS,
    "width": integer(1, nullable=True),
    "depth": integer(0, nullable=True),
    "activation": Rule(lambda v: isinstance(v, (str, Mapping)), "an activation name or {name: …, <argument>: …}"),
    "dropout": PROBABILITY,
    "input_dropout": PROBABILITY,
    "norm": choice(*NORM_NAMES),
    "output_activation": choice("auto", *OUTPUT_ACTIVATIONS),
    "init_from": Rule(
        lambda v: v is None or (isinstance(v, str) and v != ""), "a checkpoint path (.safetensors) or null"
    ),
    "freeze": Rule(
        lambda v: (
            v is None or v == "all_but_head" or (isinstance(v, list) and len(v) >= 1 and all(_is_int(i) for i in v))
        ),
        "null, all_but_head, or a list of dense-layer indices, e.g. [0] (the first hidden layer; -1 is the output layer)",
    ),
}

SHAPING: dict[str, Any] = {  # the training-split knobs of annkit.data.shaping
    "class_fraction": Rule(
        lambda v: v is None or (NONNEG_LIST.check(v) and all(x <= 1 for x in v)),
        "null, or one share in [0, 1] per class, e.g. [1, 1, 0.1, …]",
    ),
    "label_noise": {"fraction": SHARE, "error_rate": SHARE, "weight": number(0.0)},
}
IMAGE_DATASET: dict[str, Any] = {
    "name": TEXT,
    "root": PATH_OR_NULL,
    "search": TEXT_LIST,
    "download": BOOL,
    "verify": BOOL,
    "val_size": integer(1),
    "classes": Rule(
        lambda v: (
            v is None
            or (
                isinstance(v, list)
                and len(v) >= 2
                and all(_is_int(x) or isinstance(x, str) for x in v)
                and len(set(map(str, v))) == len(v)
            )
        ),
        "null, or a list of 2 or more distinct class indices or names, e.g. [0, 1, 2, 3, 4]",
    ),
    "limit_train": integer(1, nullable=True),
    **SHAPING,
    "sample_weight": PATH_OR_NULL,
    "augment": {"hflip": BOOL, "shift": integer(0, 8)},
}
LOGIC: dict[str, Any] = {"name": TEXT, "copies": integer(1), "noise": number(0.0)}
DATASET_SCHEMAS: dict[str, dict[str, Any]] = {
    "fashion_mnist": IMAGE_DATASET,
    "mnist": IMAGE_DATASET,
    "xor": LOGIC,
    "logic": {**LOGIC, "gate": choice(*GATES)},
    "playground": {
        "name": TEXT,
        "kind": choice(*dict.fromkeys(CLASSIFICATION_KINDS + REGRESSION_KINDS)),
        "task": choice(*PLAYGROUND_TASKS),
        "n": integer(4),
        "noise": number(0.0, 0.5),
        "train_ratio": SHARE_OPEN,
        "val_size": SHARE_OPEN,
        "features": Rule(
            lambda v: isinstance(v, list) and len(v) >= 1 and all(x in PLAYGROUND_FEATURES for x in v),
            f"a list of features from: {', '.join(PLAYGROUND_FEATURES)}",
        ),
        "standardize": BOOL,
        **SHAPING,
    },
    "csv": {
        "name": TEXT,
        "path": PATH_OR_NULL,
        "train": PATH_OR_NULL,
        "val": PATH_OR_NULL,
        "test": PATH_OR_NULL,
        "target": Rule(lambda v: v is None or COLUMNS.check(v), "a column name, or a list of column names"),
        "features": Rule(
            lambda v: v is None or (isinstance(v, list) and COLUMNS.check(v)),
            "null (all other columns) or a list of column names",
        ),
        "task": choice(*CSV_TASKS),
        "sample_weight": PATH_OR_NULL,
        "standardize": BOOL,
        "val_size": SPLIT_SIZE,
        "test_size": SPLIT_SIZE,
        "delimiter": Rule(
            lambda v: isinstance(v, str) and (len(v) == 1 or v in ("tab", "\\t")),
            "one character, e.g. ',' or ';', or tab",
        ),
        "limit_train": integer(1, nullable=True),
        **SHAPING,
    },
}

CLASS_WEIGHTS = Rule(
    lambda v: v is None or v == "balanced" or (NONNEG_LIST.check(v) and len(v) >= 2),
    "null, balanced (w_c = n / (K·n_c)), or a list of K numbers ≥ 0 (not all 0), one per class",
)
LOSS_COMMON: dict[str, Any] = {
    "name": TEXT,
    "class_weights": CLASS_WEIGHTS,
    "reduction": choice(*REDUCTIONS),
    "l2": number(0.0),
    "l1": number(0.0),
}
LOSS_SCHEMAS: dict[str, dict[str, Any]] = {
    "ce": {**LOSS_COMMON, "label_smoothing": PROBABILITY},
    "bce": {
        **LOSS_COMMON,
        "pos_weight": Rule(
            lambda v: (
                v is None
                or (_is_num(v) and v > 0)
                or (isinstance(v, list) and len(v) >= 1 and all(_is_num(x) and x > 0 for x in v))
            ),
            "null, a number > 0, or a list of numbers > 0 (one per label)",
        ),
    },
    "mse": LOSS_COMMON,
}


LR_FIND_SCHEMA: dict[str, Any] = {
    "start_lr": number(0.0, lo_open=True),
    "end_lr": number(0.0, lo_open=True),
    "steps": integer(10),
    "mode": choice("exp", "linear"),
    "repeats": integer(1),
    "seed": integer(0, 2**32 - 64, nullable=True),
    "holdout_batches": integer(0),
    "holdout_every": integer(1),
    "smooth": number(0.0, lo_open=True),
    "diverge": number(0.0, lo_open=True),
    "offset": number(0.0),
    "margin": number(0.0),
    "one_cycle_peak": choice("suggestion", "band_top"),
}


RUN_SCHEMA: dict[str, Any] = {  # the train config's keys outside the groups checked by a function
    "trainer": {
        "epochs": integer(1),
        "batch_size": integer(1),
        "eval_batch_size": integer(1),
        "device": DEVICE,
        "precision": choice("auto", "fp32", "bf16"),
        "seed": integer(0, 2**32 - 2),  # torch and numpy seeds; annkit also uses seed + 1
        "threads": Rule(lambda v: v == "auto" or (_is_int(v) and v >= 1), "auto or a whole number ≥ 1"),
        "compile": BOOL,
        "deterministic": BOOL,
        "grad_clip": number(0.0, lo_open=True, nullable=True),
        "best_metric": choice("auto", *METRICS),
        "early_stopping": {
            "metric": choice(*METRICS),
            "patience": integer(1, nullable=True),
            "min_delta": number(0.0),
        },
        "log_every": integer(1),
        "print_every": Rule(lambda v: v == "auto" or (_is_int(v) and v >= 1), "auto or a whole number ≥ 1"),
        "nan_policy": choice("stop", "skip_batch"),
        "overwrite": BOOL,
        "checkpoint": {"every_n_steps": integer(1, nullable=True), "keep_last": integer(0)},
    },
    "logger": {
        "confusion": BOOL,
        "images_every": Rule(
            lambda v: v == "auto" or (_is_int(v) and v >= 0), "auto or a whole number ≥ 0 (0 = never)"
        ),
        "misclassified": integer(1, 256),
        "boundary_resolution": integer(10, 1000),
        "histograms": BOOL,
        "histograms_every": integer(1),
    },
    "resume": Rule(lambda v: v is None or (isinstance(v, str) and v != ""), "a run dir or a checkpoint path, or null"),
}


# the schema of each group that config.TRAIN_SCHEMA checks with a function: one option's keys, or every option's
# (dataset, loss: the keys depend on the chosen name); None: any key (the arguments of a torch class)
GROUP_SCHEMAS: dict[str, list[Mapping[str, Any]] | None] = {
    "model": [MODEL_SCHEMA],
    "dataset": list(DATASET_SCHEMAS.values()),
    "loss": list(LOSS_SCHEMAS.values()),
    "lr_find": [LR_FIND_SCHEMA],
    "optimizer": None,
    "scheduler": None,
}


def key_rules(dotted: str) -> list[Rule] | None:
    """The rules a value of config key ``dotted`` (e.g. ``dataset.path``) must meet, one of them at
    least: [] for a key that takes any value (an optimizer's or scheduler's argument), None for a key
    the train config does not have (under any option of its group)."""
    top, *rest = dotted.split(".")
    if top in GROUP_SCHEMAS:
        schemas = GROUP_SCHEMAS[top]
        if schemas is None:
            return [] if len(rest) == 1 else None
        nodes: list[Any] = list(schemas)
    elif top in RUN_SCHEMA:
        nodes = [RUN_SCHEMA[top]]
    else:
        return None
    for segment in rest:
        nodes = [node[segment] for node in nodes if isinstance(node, Mapping) and segment in node]
    if not nodes:
        return None
    return [node for node in nodes if isinstance(node, Rule)]  # none: a whole sub-mapping, checked once composed


def check_present(node: Any, schema: Mapping[str, Any], path: str) -> None:
    """The keys of ``node`` that ``schema`` knows must meet its rules (a stored config from an older or
    other annkit: missing keys and keys the schema does not know are left alone)."""
    if not isinstance(node, Mapping):
        raise AnnkitError(f"{path} must be a mapping of keys ({', '.join(schema)}), not {node!r}.")
    for key, value in node.items():
        rule = schema.get(key)
        full = f"{path}.{key}"
        if isinstance(rule, Mapping):
            check_present(value, rule, full)
        elif isinstance(rule, Rule) and not rule.check(value):
            raise AnnkitError(f"{full}={value!r} is not valid: expected {rule.expected}.")


# optimizer and scheduler classes come from torch only: naming a class imports its module, and a config or
# checkpoint from someone else must not make annkit import (and so run) code of their choosing
TORCH_TARGET = re.compile(r"torch\.optim\.(lr_scheduler\.)?[A-Za-z_][A-Za-z0-9_]*")


# the keys of a train config that name files or folders: a run records them absolute (see :func:`portable`)
PATH_KEYS = (
    "dataset.root",
    "dataset.search",
    "dataset.path",
    "dataset.train",
    "dataset.val",
    "dataset.test",
    "dataset.sample_weight",
    "model.init_from",
    "resume",
)


# ── what each key means: one line each, shown by `annkit <task> --help` (a test checks every key has one) ──
# "<group>.<key>@<option>" is the meaning under that option of the group, where it differs from the plain key's.
MEANINGS: dict[str, str] = {
    "resume": "a run dir or checkpoint to go on with, exactly where it stopped (null: a new run)",
    # model
    "model.name": "a label, shown in TensorBoard's hparams and kept in the checkpoint",
    "model.hidden": "widths of the hidden layers; [] is logistic / softmax regression",
    "model.width": "with model.depth: hidden = [width] × depth (a search's knobs); null: use model.hidden",
    "model.depth": "the number of hidden layers of model.width units; null: use model.hidden",
    "model.activation": "the hidden units' activation: relu, tanh, sigmoid, gelu, … or {name: leaky_relu, negative_slope: 0.1}",
    "model.dropout": "dropout after every hidden activation (0 = off)",
    "model.input_dropout": "dropout on the inputs (Hinton et al. 2012 used 0.2 on pixels)",
    "model.norm": "none | batch | layer: a normalisation after each hidden Linear",
    "model.output_activation": "auto (from the loss: ce → softmax, bce → sigmoid, …) | identity | sigmoid | softmax | tanh",
    "model.init_from": "fine-tuning: a checkpoint whose matching weights start this model",
    "model.freeze": "null | all_but_head | [layer indices]: dense layers kept fixed (-1 is the output layer)",
    # dataset
    "dataset.name": "which dataset this is (pick one with dataset=<option>, not dataset.name)",
    "dataset.root": "the folder with the four IDX files (looked in first; null: only dataset.search)",
    "dataset.search": "more folders to look in for the IDX files, in order",
    "dataset.download": "download through torchvision when no folder has the files",
    "dataset.verify": "check each IDX file's md5 against the official release",
    "dataset.val_size": "validation rows carved from the training file (a seeded shuffle)",
    "dataset.val_size@playground": "the share of the points, from the held-out rest, to validate on",
    "dataset.val_size@csv": "validation rows: a number, or a share in [0, 1) (unless dataset.val is a file)",
    "dataset.classes": "a subset of the classes (indices or names), e.g. [0,1,2,3,4]; null: all",
    "dataset.limit_train": "use only the first N training samples (null: all)",
    "dataset.class_fraction": "training split only: keep this share of each class, e.g. [1,1,0.1,…] (null: all)",
    "dataset.label_noise.fraction": 'share of training samples labelled by a "crowd" (0 = off)',
    "dataset.label_noise.error_rate": "chance that a crowd label is wrong (another class, uniformly)",
    "dataset.label_noise.weight": "the sample weight of the crowd's samples (the experts' keep 1)",
    "dataset.sample_weight": "a file with one weight per training sample (.npy, or one number a line)",
    "dataset.sample_weight@csv": "a column of the table, or a file with one weight per row of the training file",
    "dataset.augment.hflip": "mirror half of the training images left-right",
    "dataset.augment.shift": "shift training images by up to this many pixels in x and y (0 = off)",
    "dataset.copies": "the training set is the 4 rows of the truth table repeated this many times",
    "dataset.noise": "std of Gaussian jitter added to the inputs of every training copy (0 = exact)",
    "dataset.noise@playground": "0 … 0.5: TF Playground's noise slider / 100",
    "dataset.gate": "the logic gate: and | or | nand | nor | xor",
    "dataset.kind": "the playground set: circle | xor | gauss | spiral (classification), plane | gauss (regression)",
    "dataset.task": "classification | regression (the playground's problem type)",
    "dataset.task@csv": "auto | classification | regression | multilabel (auto: text or ≤ 20 integers → classes)",
    "dataset.n": "the number of points generated",
    "dataset.train_ratio": "the share of the points to train on (the playground's ratio slider)",
    "dataset.features": "the inputs, any of x1, x2, x1_sq, x2_sq, x1_x2, sin_x1, sin_x2",
    "dataset.features@csv": "the input columns in order; null: every column but the target(s) and weights",
    "dataset.standardize": "inputs → (x − μ_train) / σ_train, fitted on the training split only",
    "dataset.path": "one CSV file with a header row, split into train / val / test",
    "dataset.train": "or: a training CSV file (with dataset.val / dataset.test, or carved from it)",
    "dataset.val": "an optional validation CSV file (the training file's columns)",
    "dataset.test": "an optional test CSV file (the training file's columns)",
    "dataset.target": "the column to predict, or a list of columns (several 0/1 columns: multi-label)",
    "dataset.test_size": "test rows: a number, or a share in [0, 1) (unless dataset.test is a file)",
    "dataset.delimiter": "the field separator: one character, or tab",
    # loss
    "loss.name": "which loss this is (pick one with loss=ce|bce|mse)",
    "loss.label_smoothing": "ε: targets (1 − ε)·one-hot + ε/K (0 = plain one-hot)",
    "loss.pos_weight": "bce: the weight of the positive term, one number or one per label (null = 1)",
    "loss.class_weights": "null | [w_0, …] | balanced (w_c = n / (K·n_c)): multiplies the sample weights",
    "loss.reduction": "mean: Σ wᵢℓᵢ / N | weighted_mean: Σ wᵢℓᵢ / Σ wᵢ",
    "loss.l2": "λ: adds λ/(2m) · Σ W² over the weight matrices (not biases)",
    "loss.l1": "λ₁: adds λ₁/m · Σ |W| over the weight matrices",
    # optimizer (torch.optim's arguments, and annkit's head_lr_mult)
    "optimizer._target_": "the torch.optim class",
    "optimizer._partial_": "always true: annkit passes the parameters",
    "optimizer.lr": "the learning rate, or auto: run the LR range test first and train at its suggestion",
    "optimizer.betas": "Adam's decay rates of the first and second moment estimates",
    "optimizer.eps": "added to the denominator for numerical stability",
    "optimizer.weight_decay": "weight decay (decoupled for AdamW, an L2 term in the gradient otherwise)",
    "optimizer.fused": "one fused kernel per step (CPU, CUDA, MPS): faster steps, the same update",
    "optimizer.momentum": "the momentum factor (0 = none)",
    "optimizer.nesterov": "Nesterov momentum",
    "optimizer.alpha": "RMSprop's smoothing constant of the squared-gradient average",
    "optimizer.head_lr_mult": "annkit's: the output layer trains at lr × this (e.g. 10 for a new head)",
    # scheduler
    "scheduler._target_": "the torch.optim.lr_scheduler class (null: a constant lr)",
    "scheduler._partial_": "always true: annkit passes the optimizer and the schedule's length",
    "scheduler.interval": "annkit's: advance the schedule after every batch (step) or every epoch (epoch)",
    "scheduler.if_too_short": "annkit's: a run too short for the one-cycle warm-up trains at a constant lr (constant) or is refused",
    "scheduler.max_lr": "one-cycle's peak lr (by default optimizer.lr)",
    "scheduler.pct_start": "the share of the steps spent warming up to max_lr",
    "scheduler.anneal_strategy": "cos | linear: the shape of the warm-up and the annealing",
    "scheduler.div_factor": "the first lr is max_lr / div_factor",
    "scheduler.final_div_factor": "the last lr is the first / final_div_factor",
    "scheduler.eta_min": "the lowest lr of the cosine",
    "scheduler.step_size": "epochs (or steps) between two decays",
    "scheduler.gamma": "the factor each decay multiplies the lr by",
    # trainer
    "trainer.epochs": "passes over the training split",
    "trainer.batch_size": "training samples per step (the global batch under torchrun)",
    "trainer.eval_batch_size": "validation / test samples per forward pass (no gradients)",
    "trainer.device": "auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps",
    "trainer.precision": "auto (bf16 autocast on CUDA, fp32 elsewhere) | fp32 | bf16",
    "trainer.compile": "run the training steps through torch.compile (worth it on GPUs)",
    "trainer.threads": "torch's CPU threads: auto, or a number",
    "trainer.seed": "seeds the split, init, shuffling, dropout and augmentation",
    "trainer.deterministic": "torch.use_deterministic_algorithms (slower on GPU, bit-reproducible)",
    "trainer.grad_clip": "the largest global L2 norm of the gradients (null: no clipping)",
    "trainer.best_metric": "picks best.safetensors and the weights the test set is scored with (auto: val/accuracy, val/loss for regression)",
    "trainer.early_stopping.metric": "stop when this has not improved …",
    "trainer.early_stopping.patience": "… for this many epochs (null: never stop early)",
    "trainer.early_stopping.min_delta": "the smallest change that counts as an improvement",
    "trainer.log_every": "training steps between progress and TensorBoard updates (one host read each)",
    "trainer.print_every": "print every N-th epoch row (auto: about 50 rows); the best and last rows always print",
    "trainer.nan_policy": "a NaN / inf training loss: stop (keep the last good checkpoint, exit 3) | skip_batch",
    "trainer.overwrite": "true: a run dir that holds a run is moved aside to <dir>.old-<time> (never deleted)",
    "trainer.checkpoint.every_n_steps": "also write last.safetensors every N training steps (null: once an epoch)",
    "trainer.checkpoint.keep_last": "also keep the K most recent last.safetensors as step-<step>.safetensors",
    # logger
    "logger.confusion": "a confusion-matrix image at every validation, and the test split's",
    "logger.images_every": "decision boundary / misclassified images every N epochs (auto: about 5 a run; 0 = never)",
    "logger.misclassified": "images in the misclassified grid (image datasets)",
    "logger.boundary_resolution": "grid points per side of the decision-boundary picture",
    "logger.histograms": "histograms of weights, biases, gradients and activations per dense layer",
    "logger.histograms_every": "… every N epochs (and at the last)",
    # lr_find
    "lr_find.start_lr": "the first rung of the lr ladder (> 0)",
    "lr_find.end_lr": "the last rung; the sweep stops earlier when the loss blows up",
    "lr_find.steps": "rungs, both ends included: one training batch each",
    "lr_find.mode": "exp: rungs evenly spaced in log(lr) | linear: evenly spaced in lr",
    "lr_find.repeats": "independent sweeps; more than 1 reports the median and its spread",
    "lr_find.seed": "null: trainer.seed; repeat r uses seed + r",
    "lr_find.holdout_batches": "> 0: also score this many fixed validation batches (a second curve)",
    "lr_find.holdout_every": "rungs between two scorings of the held-out batches",
    "lr_find.smooth": "Gaussian smoothing of the loss curve, σ in decades of lr",
    "lr_find.diverge": "stop once the loss is back above min + diverge × (start − min)",
    "lr_find.offset": "the suggestion: this many decades above the half-drop point …",
    "lr_find.margin": "… and at least this many decades below the blow-up edge",
    "lr_find.one_cycle_peak": "optimizer.lr=auto with a one-cycle schedule peaks at: suggestion | band_top",
}
# the top-level keys of the other tasks' configs
TASK_MEANINGS: dict[str, dict[str, str]] = {
    "eval": {
        "checkpoint": "the .safetensors file an annkit run wrote (required)",
        "split": "test | val | train: the run's own split, as it held it out",
        "device": "auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps",
        "overwrite": "true: a run dir that holds a run is moved aside to <dir>.old-<time> (never deleted)",
        "batch_size": "rows per forward pass",
        "dataset": "null: the checkpoint's own dataset; dataset=<name> another; dataset.<key>=… changes one key",
    },
    "predict": {
        "checkpoint": "the .safetensors file an annkit run wrote (required)",
        "input": "a .csv file, an image, or a folder of images (required)",
        "device": "auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps",
        "overwrite": "true: a run dir that holds a run is moved aside to <dir>.old-<time> (never deleted)",
        "batch_size": "rows per forward pass",
    },
    "board": {
        "logdir": "the folder TensorBoard searches (recursively) for runs' tb/ event files",
        "port": "the port to serve on (0: any free port)",
        "host": "127.0.0.1, ::1 or localhost: this machine only",
        "reload_interval": "seconds between looks for new data (0: load once)",
    },
}


def meaning(key: str, option: str | None = None) -> str | None:
    """The one-line meaning of train config key ``key`` (under its group's ``option``, where it differs)."""
    return MEANINGS.get(f"{key}@{option}") or MEANINGS.get(key)
