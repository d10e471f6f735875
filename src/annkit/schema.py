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

from annkit.errors import AnnkitError, did_you_mean

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
    "a": (0, 0, 1, 1),  # A itself (McCulloch–Pitts's identity neuron)
    "a_and_not_b": (0, 0, 1, 0),  # A ∧ ¬B
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
OPTIMIZER_KEYS = {"head_lr_mult", "rule"}  # and inside the optimizer group
RULES = ("backprop", "perceptron")  # optimizer.rule: how the update is computed (annkit.tasks.build)
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
FILE_OR_NULL = Rule(PATH_OR_NULL.check, "a file path or null")
COLUMN_OR_FILE = Rule(PATH_OR_NULL.check, "a column name, a file path, or null")
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
    "weights": Rule(
        lambda v: v is None or (isinstance(v, str) and v != "") or (isinstance(v, list) and len(v) >= 1),
        "a YAML or JSON file, or a list of layers [{weight: [[…]], bias: […]}, …], or null",
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
    "sample_weight": FILE_OR_NULL,
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
        "path": FILE_OR_NULL,
        "train": FILE_OR_NULL,
        "val": FILE_OR_NULL,
        "test": FILE_OR_NULL,
        "target": Rule(lambda v: v is None or COLUMNS.check(v), "a column name, or a list of column names"),
        "features": Rule(
            lambda v: v is None or (isinstance(v, list) and COLUMNS.check(v)),
            "null (all other columns) or a list of column names",
        ),
        "task": choice(*CSV_TASKS),
        "sample_weight": COLUMN_OR_FILE,
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
        "epochs": integer(0),
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
        "unit_maps": BOOL,
        "diagram": BOOL,
        "first_layer": integer(0, 1024),
        "max_units": integer(1, 64),
        "unit_resolution": integer(8, 200),
        "health": BOOL,
        "health_batch": integer(1),
        "health_warn": number(0.0, 1.0),
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
    "model.weights",
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


def unknown_key(path: str, key: str, valid: list[str], task: str = "train") -> AnnkitError:
    where = f"{path}." if path else ""
    return AnnkitError(
        f"Unknown config key {where}{key}.{did_you_mean(key, valid)} Valid keys"
        f"{' in ' + path if path else ''}: {', '.join(sorted(valid))}. Remove it, or fix its name; "
        f"`annkit {task} --cfg job` prints the whole config."
    )


def walk(node: Any, schema: Mapping[str, Any], path: str, task: str = "train") -> None:
    """Check a resolved config against ``schema``: no unknown key, every key present, each value meeting its
    :class:`Rule` (or a whole group's check function). The one validator of every task's config (annkit board's
    too: this module imports no torch). Raises AnnkitError, one paragraph per problem."""
    if not isinstance(node, Mapping):
        raise AnnkitError(f"{path} must be a mapping of keys ({', '.join(schema)}), not {node!r}.")
    for key in node:
        if key not in schema:
            raise unknown_key(path, str(key), list(schema), task)
    for key, rule in schema.items():
        full = f"{path}.{key}" if path else key
        if key not in node:
            raise AnnkitError(f"The config has no {full}. Add it (e.g. +{full}=…) or restore the group's YAML file.")
        value = node[key]
        if isinstance(rule, Mapping):
            walk(value, rule, full, task)
        elif isinstance(rule, Rule):
            if not rule.check(value):
                raise AnnkitError(
                    f"{full}={value!r} is not valid: expected {rule.expected}. "
                    f"Set it with {full}=<value> on the command line or in the config file."
                )
        else:  # a whole group checked by a function
            rule(value)


# annkit board's keys (configs/board.yaml), checked by :func:`walk` like every task's config
BOARD_SCHEMA: dict[str, Any] = {
    "logdir": Rule(lambda v: isinstance(v, str) and v != "", "a folder path, e.g. logdir=outputs"),
    "port": integer(0, 65535),
    "host": Rule(lambda v: isinstance(v, str) and v != "", "a loopback address: 127.0.0.1, ::1 or localhost"),
    "reload_interval": number(0.0),
}


def resolved(cfg: Any) -> dict[str, Any]:
    """A composed config as plain containers, its interpolations resolved, or one paragraph saying which not."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise AnnkitError(
            f"The config does not resolve: {str(err).splitlines()[0]}. Check the interpolations (${{…}}) and required "
            f"(???) values."
        ) from None
    assert isinstance(values, dict)
    return values
