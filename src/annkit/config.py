"""Validation of a composed config, before any data is read or object built.

Hydra composes the YAML files and applies the overrides; this module then checks every key
against :data:`TRAIN_SCHEMA` (unknown keys, missing keys, types, ranges, names) and checks
the optimizer and scheduler against the signature of their ``_target_`` class. Each problem
becomes one :class:`~annkit.errors.AnnkitError` paragraph. The defaults themselves live in
the YAML files, not here.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from annkit.data.csv_table import TASKS as CSV_TASKS
from annkit.data.csv_table import csv_columns
from annkit.data.playground import CLASSIFICATION_KINDS, FEATURES, REGRESSION_KINDS
from annkit.data.playground import TASKS as PLAYGROUND_TASKS
from annkit.data.tabular import GATES
from annkit.errors import AnnkitError, did_you_mean, unknown_name
from annkit.losses import REDUCTIONS
from annkit.metrics import TASK_METRICS
from annkit.models import NORMS, OUTPUT_ACTIVATIONS, make_activation

# every validation metric some task reports; train() checks that the chosen one exists for the data's task
METRICS = tuple(dict.fromkeys(f"val/{m}" for names in TASK_METRICS.values() for m in names))
# scheduler arguments a config may not set: annkit passes the optimizer and the schedule's length
# (total_steps or T_max), and OneCycleLR's epochs/steps_per_epoch would contradict total_steps
SCHEDULER_FILLED = {"total_steps", "T_max", "epochs", "steps_per_epoch", "optimizer"}
SCHEDULER_KEYS = {"interval"}  # annkit's own keys inside the scheduler group
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


def number(lo: float, hi: float | None = None, *, hi_open: bool = False, lo_open: bool = False, nullable: bool = False) -> Rule:
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
TEXT_LIST = Rule(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of folder paths, e.g. [data/fashion_mnist]")
WIDTHS = Rule(
    lambda v: isinstance(v, list) and all(_is_int(x) and x >= 1 for x in v),
    "a list of positive layer widths, e.g. [512, 256], or [] for no hidden layer",
)
DEVICE = Rule(lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None, "one of: auto, cpu, cuda, cuda:N, mps")
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
    lambda v: isinstance(v, str) and v != "" or (isinstance(v, list) and len(v) >= 1 and all(isinstance(x, str) and x for x in v)),
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
    "norm": choice(*NORMS),
    "output_activation": choice("auto", *OUTPUT_ACTIVATIONS),
    "init_from": Rule(lambda v: v is None or (isinstance(v, str) and v != ""), "a checkpoint path (.safetensors) or null"),
    "freeze": Rule(
        lambda v: v is None or v == "all_but_head" or (isinstance(v, list) and len(v) >= 1 and all(_is_int(i) for i in v)),
        "null, all_but_head, or a list of dense-layer indices, e.g. [0] (the first hidden layer; -1 is the output layer)",
    ),
}

SHAPING: dict[str, Any] = {  # the training-split knobs of annkit.data.shaping
    "class_fraction": Rule(lambda v: v is None or NONNEG_LIST.check(v) and all(x <= 1 for x in v),
                           "null, or one share in [0, 1] per class, e.g. [1, 1, 0.1, …]"),
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
        lambda v: v is None or (isinstance(v, list) and len(v) >= 2 and all(_is_int(x) or isinstance(x, str) for x in v)
                                and len(set(map(str, v))) == len(v)),
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
        "features": Rule(lambda v: isinstance(v, list) and len(v) >= 1 and all(x in FEATURES for x in v),
                         f"a list of features from: {', '.join(FEATURES)}"),
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
        "features": Rule(lambda v: v is None or (isinstance(v, list) and COLUMNS.check(v)), "null (all other columns) or a list of column names"),
        "task": choice(*CSV_TASKS),
        "sample_weight": PATH_OR_NULL,
        "standardize": BOOL,
        "val_size": SPLIT_SIZE,
        "test_size": SPLIT_SIZE,
        "delimiter": Rule(lambda v: isinstance(v, str) and (len(v) == 1 or v in ("tab", "\\t")), "one character, e.g. ',' or ';', or tab"),
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
    "bce": {**LOSS_COMMON, "pos_weight": Rule(
        lambda v: v is None or (_is_num(v) and v > 0) or (isinstance(v, list) and len(v) >= 1 and all(_is_num(x) and x > 0 for x in v)),
        "null, a number > 0, or a list of numbers > 0 (one per label)",
    )},
    "mse": LOSS_COMMON,
}


def check_model(node: Any) -> None:
    _walk(node, MODEL_SCHEMA, "model")
    if (node["width"] is None) != (node["depth"] is None):
        given, missing = ("width", "depth") if node["depth"] is None else ("depth", "width")
        raise AnnkitError(
            f"model.{given}={node[given]} needs model.{missing} too: together they replace model.hidden with "
            f"[width] × depth (e.g. model.width=64 model.depth=2 is hidden=[64, 64]; depth 0 is no hidden layer). "
            f"Set both, or neither to use model.hidden."
        )
    if node["width"] is not None:
        node["hidden"] = [node["width"]] * node["depth"]  # the one list everything downstream reads
    spec = node["activation"]
    for width in sorted(set(node["hidden"])) or [1]:
        module = make_activation(spec)  # a precise AnnkitError (listing the valid names) when wrong
        try:
            module(torch.zeros(2, width))  # argument values are only checked by torch when the module runs
        except (TypeError, ValueError, RuntimeError) as err:
            raise AnnkitError(
                f"model.activation={spec!r}: torch refuses it on a layer of width {width}: {err}. Give values of the "
                f"right type and size, e.g. negative_slope: 0.1 (prelu's num_parameters must be 1 or the layer width)."
            ) from None


def _by_name(node: Any, schemas: Mapping[str, Mapping[str, Any]], group: str) -> None:
    """Check a group whose keys depend on its ``name`` (dataset, loss)."""
    if not isinstance(node, Mapping):
        raise AnnkitError(f"{group} must be a mapping of keys, not {node!r}; pick one with {group}=<name>.")
    name = node.get("name")
    if name not in schemas:
        raise unknown_name(
            group, name, schemas,
            f"Pick one with {group}=<name> (the files in configs/{group}/), not {group}.name=…, which only labels it.",
        )
    foreign = [k for k in node if k not in schemas[name]]
    if foreign and any(set(node) == set(other) for other in schemas.values()):  # another option's keys: its name was edited
        raise AnnkitError(
            f"{group}.name={name}, but the {group} settings hold keys {name} does not have ({', '.join(map(str, foreign))}): "
            f"the name only labels a {group}. To switch, pick its file with {group}={name}, not {group}.name=…; "
            f"valid keys of {group}={name}: {', '.join(schemas[name])}."
        )
    _walk(node, schemas[name], group)
    if group == "dataset" and name == "playground":
        kinds = CLASSIFICATION_KINDS if node["task"] == "classification" else REGRESSION_KINDS
        if node["kind"] not in kinds:
            other = "regression" if node["task"] == "classification" else "classification"
            raise AnnkitError(
                f"dataset.kind={node['kind']} is a {other} set of the playground, but dataset.task={node['task']}. "
                f"{node['task'].capitalize()} sets: {', '.join(kinds)}. Set dataset.task={other}, or pick one of those kinds."
            )
    if group == "dataset" and name == "csv" and node["target"] is None:
        raise AnnkitError(
            "dataset=csv needs dataset.target: the column to predict (or a list of 0/1 columns for multi-label), "
            "e.g. dataset.target=species."
        )


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


def check_lr_find(node: Any) -> None:
    _walk(node, LR_FIND_SCHEMA, "lr_find")
    if node["start_lr"] >= node["end_lr"]:
        raise AnnkitError(
            f"lr_find.start_lr={node['start_lr']:g} must be below lr_find.end_lr={node['end_lr']:g}: the finder raises "
            f"the learning rate from start_lr to end_lr. Typical: lr_find.start_lr=1e-7 lr_find.end_lr=10."
        )


TRAIN_SCHEMA: dict[str, Any] = {
    "model": check_model,
    "dataset": lambda node: _by_name(node, DATASET_SCHEMAS, "dataset"),
    "loss": lambda node: _by_name(node, LOSS_SCHEMAS, "loss"),
    "optimizer": lambda node: check_optimizer(node),  # against its _target_'s signature
    "scheduler": lambda node: check_scheduler(node),
    "lr_find": check_lr_find,
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
        "images_every": Rule(lambda v: v == "auto" or (_is_int(v) and v >= 0), "auto or a whole number ≥ 0 (0 = never)"),
        "misclassified": integer(1, 256),
        "boundary_resolution": integer(10, 1000),
        "histograms": BOOL,
        "histograms_every": integer(1),
    },
    "resume": Rule(lambda v: v is None or (isinstance(v, str) and v != ""), "a run dir or a checkpoint path, or null"),
}


# the schema of each group that TRAIN_SCHEMA checks with a function: one option's keys, or every option's
# (dataset, loss: the keys depend on the chosen name); None: any key (the arguments of a torch class)
GROUP_SCHEMAS: dict[str, list[Mapping[str, Any]] | None] = {
    "model": [MODEL_SCHEMA], "dataset": list(DATASET_SCHEMAS.values()), "loss": list(LOSS_SCHEMAS.values()),
    "lr_find": [LR_FIND_SCHEMA], "optimizer": None, "scheduler": None,
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
    elif top in TRAIN_SCHEMA:
        nodes = [TRAIN_SCHEMA[top]]
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


def _unknown_key(path: str, key: str, valid: list[str]) -> AnnkitError:
    where = f"{path}." if path else ""
    return AnnkitError(
        f"Unknown config key {where}{key}.{did_you_mean(key, valid)} Valid keys"
        f"{' in ' + path if path else ''}: {', '.join(sorted(valid))}. Remove it, or fix its name; "
        f"`annkit train --cfg job` prints the whole config."
    )


def _walk(node: Any, schema: Mapping[str, Any], path: str) -> None:
    if not isinstance(node, Mapping):
        raise AnnkitError(f"{path} must be a mapping of keys ({', '.join(schema)}), not {node!r}.")
    for key in node:
        if key not in schema:
            raise _unknown_key(path, str(key), list(schema))
    for key, rule in schema.items():
        full = f"{path}.{key}" if path else key
        if key not in node:
            raise AnnkitError(f"The config has no {full}. Add it (e.g. +{full}=…) or restore the group's YAML file.")
        value = node[key]
        if isinstance(rule, Mapping):
            _walk(value, rule, full)
        elif isinstance(rule, Rule):
            if not rule.check(value):
                raise AnnkitError(
                    f"{full}={value!r} is not valid: expected {rule.expected}. "
                    f"Set it with {full}=<value> on the command line or in the config file."
                )
        else:  # a whole group checked by a function
            rule(value)


# optimizer and scheduler classes come from torch only: naming a class imports its module, and a config or
# checkpoint from someone else must not make annkit import (and so run) code of their choosing
TORCH_TARGET = re.compile(r"torch\.optim\.(lr_scheduler\.)?[A-Za-z_][A-Za-z0-9_]*")


def _target_class(node: Mapping[str, Any], group: str, base: type, examples: str) -> type:
    target = node.get("_target_")
    cls = None
    if isinstance(target, str) and TORCH_TARGET.fullmatch(target):
        try:
            cls = get_class(target)
        except Exception:
            cls = None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise AnnkitError(
            f"{group}._target_={target!r} is not a {base.__module__}.{base.__name__} class. "
            f"Give the full import path of one in torch.optim (annkit imports no other module for a config), e.g. "
            f"{examples}, or pick a file with {group}=<name>."
        )
    if node.get("_partial_") is not True:
        raise AnnkitError(
            f"{group}._partial_ must be true: annkit calls the {group} with the arguments it owns "
            f"({'the model parameters' if group == 'optimizer' else 'the optimizer and the step count'})."
        )
    return cls


def _check_kwargs(node: Mapping[str, Any], group: str, cls: type, own: set[str], skip: set[str]) -> None:
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = sorted(set(params) - skip - {"self"} | own)
    for key in node:
        if key in HYDRA_KEYS or key in own:
            continue
        if key not in params or key in skip:
            raise AnnkitError(
                f"{group}.{key} is not an argument of {cls.__module__}.{cls.__name__}."
                f"{did_you_mean(str(key), valid)} Valid keys: {', '.join(valid)}."
            )


def check_optimizer(node: Any) -> None:
    if not isinstance(node, Mapping):
        raise AnnkitError(f"optimizer must be a mapping with _target_, not {node!r}; pick one with optimizer=adamw.")
    cls = _target_class(node, "optimizer", torch.optim.Optimizer, "torch.optim.SGD or torch.optim.AdamW")
    _check_kwargs(node, "optimizer", cls, OPTIMIZER_KEYS, {"params"})
    mult = node.get("head_lr_mult")
    if not (_is_num(mult) and mult > 0):
        raise AnnkitError(
            f"optimizer.head_lr_mult={mult!r} is not valid: expected a number > 0 (the output layer trains at "
            f"optimizer.lr × head_lr_mult; 1 = the same lr). Set it with optimizer.head_lr_mult=10."
        )
    lr = node.get("lr")
    if not (lr == "auto" or _is_num(lr) and lr > 0):
        raise AnnkitError(
            f"optimizer.lr={lr!r} is not valid: expected a number > 0, e.g. optimizer.lr=1e-3, or auto (run the LR range "
            f"test first and train at its suggestion; `annkit lr-find` shows the curve)."
        )


def check_scheduler(node: Any) -> None:
    if not isinstance(node, Mapping):
        raise AnnkitError(f"scheduler must be a mapping, not {node!r}; pick one with scheduler=onecycle.")
    if node.get("interval") not in ("step", "epoch"):
        raise AnnkitError(
            f"scheduler.interval={node.get('interval')!r} is not valid: expected step (advance the "
            f"schedule after every batch) or epoch (after every epoch)."
        )
    if node.get("_target_") is None:
        extra = sorted(set(node) - HYDRA_KEYS - SCHEDULER_KEYS)
        if extra:
            raise AnnkitError(f"scheduler=none takes no arguments, but got {', '.join(extra)}.")
        return
    cls = _target_class(
        node, "scheduler", torch.optim.lr_scheduler.LRScheduler,
        "torch.optim.lr_scheduler.OneCycleLR or torch.optim.lr_scheduler.CosineAnnealingLR",
    )
    if issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise AnnkitError("ReduceLROnPlateau needs a metric at every step, which annkit does not wire yet; use scheduler=step or cosine.")
    _check_kwargs(node, "scheduler", cls, SCHEDULER_KEYS, SCHEDULER_FILLED)


def validate(cfg: DictConfig, schema: Mapping[str, Any] = TRAIN_SCHEMA) -> dict[str, Any]:
    """Check the whole config; return it resolved as plain containers. Raises AnnkitError."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise AnnkitError(f"The config does not resolve: {str(err).splitlines()[0]}. Check the interpolations (${{…}}) and required (???) values.") from None
    assert isinstance(resolved, dict)
    _walk(resolved, schema, "")
    if "optimizer" in schema:
        dry_run_optimization(resolved["optimizer"], resolved["scheduler"])
    if "model" in schema and resolved["model"]["norm"] == "batch" and resolved["trainer"]["batch_size"] < 2:
        raise AnnkitError(
            "model.norm=batch needs batches of at least 2 samples (batch norm divides by the batch's "
            "variance), but trainer.batch_size=1. Use a larger batch, or model.norm=layer / none."
        )
    return resolved


# the keys of a train config that name files or folders: a run records them absolute (see :func:`portable`)
PATH_KEYS = ("dataset.root", "dataset.search", "dataset.path", "dataset.train", "dataset.val", "dataset.test",
             "dataset.sample_weight", "model.init_from", "resume")


def _is_column(csv: dict[str, Any], name: str, base: Path) -> bool:
    """Whether ``dataset.sample_weight=name`` names a column of the table (as the CSV loader decides)."""
    table = csv.get("path") or csv.get("train")
    if not (base / name).is_file():
        return True
    try:
        return table is not None and name in csv_columns(base / table, csv["delimiter"])
    except AnnkitError:
        return False  # the loader explains what is wrong with the table


def portable(resolved: dict[str, Any], cwd: Path | None = None) -> dict[str, str | list[str]]:
    """Make every path of a validated train config absolute (relative ones are relative to ``cwd``, the
    folder annkit runs in), in place, so that the run's records (checkpoints, metrics.json) work from
    anywhere; return ``{dotted key: new value}`` for the keys that changed. A CSV's
    ``dataset.sample_weight`` that names one of its columns stays a column name."""
    base = Path.cwd() if cwd is None else cwd
    changed: dict[str, str | list[str]] = {}
    for key in PATH_KEYS:
        group, _, name = key.rpartition(".")
        node = resolved.get(group) if group else resolved
        if not isinstance(node, dict) or node.get(name) is None:
            continue
        value = node[name]
        if key == "dataset.sample_weight" and node.get("name") == "csv" and _is_column(node, value, base):
            continue  # a column of the table
        new = [str(base / Path(v).expanduser()) for v in value] if isinstance(value, list) else str(base / Path(value).expanduser())
        if new != value:
            node[name] = changed[key] = new
    return changed


def _torch_refused(group: str, err: Exception) -> AnnkitError:
    return AnnkitError(
        f"The {group} settings are refused by torch: {type(err).__name__}: {err}. Fix the value on the "
        f"command line ({group}.<key>=…); `annkit train --cfg job` shows the current {group} settings."
    )


def dry_run_optimization(optimizer: dict[str, Any], scheduler: dict[str, Any]) -> None:
    """Build the optimizer on a dummy parameter and take two scheduler steps, so that values torch
    only checks when it runs them (betas, nesterov without momentum, step_size=0, …) fail here,
    before any data is read, and not after an epoch of training."""
    # optimizer.lr=auto (and what interpolates it, e.g. one-cycle's max_lr) stands for the finder's future suggestion
    optimizer = {k: 1e-3 if v == "auto" else v for k, v in optimizer.items() if k not in OPTIMIZER_KEYS}
    scheduler = {k: 1e-3 if v == "auto" else v for k, v in scheduler.items()}
    param = torch.nn.Parameter(torch.zeros(1))
    try:
        opt = instantiate(optimizer, _convert_="all")([param])
    except (TypeError, ValueError, RuntimeError) as err:
        raise _torch_refused("optimizer", err) from None
    spec = {k: v for k, v in scheduler.items() if k not in SCHEDULER_KEYS}
    if spec.get("_target_") is None:
        return
    params = inspect.signature(get_class(spec["_target_"])).parameters
    length = {name: 10_000 for name in ("total_steps", "T_max") if name in params}
    try:
        sched = instantiate(spec, _convert_="all")(opt, **length)
        for _ in range(2):
            opt.step()
            sched.step()
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, KeyError) as err:
        raise _torch_refused("scheduler", err) from None
