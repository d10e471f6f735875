"""Validation of a composed config, before any data is read or object built.

Hydra composes the YAML files and applies the overrides; this module then checks every key
against :data:`TRAIN_SCHEMA` (unknown keys, missing keys, types, ranges, names) and checks
the optimizer and scheduler against the signature of their ``_target_`` class. Each problem
becomes one :class:`~annkit.errors.AnnkitError` paragraph. The defaults themselves live in
the YAML files, not here.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from annkit.data.csv_rows import csv_columns
from annkit.errors import AnnkitError, did_you_mean, unknown_name
from annkit.models import make_activation
from annkit.schema import (  # noqa: F401 - re-exported: the rules are the schema's, the checks that need torch are here
    BOOL,
    CLASSIFICATION_KINDS,
    DATASET_SCHEMAS,
    DEVICE,
    HYDRA_KEYS,
    LOSS_SCHEMAS,
    LR_FIND_SCHEMA,
    METRICS,
    MODEL_SCHEMA,
    OPTIMIZER_KEYS,
    PATH_KEYS,
    REGRESSION_KINDS,
    RULES,
    RUN_SCHEMA,
    SCHEDULER_FILLED,
    SCHEDULER_KEYS,
    TORCH_TARGET,
    Rule,
    _is_num,
    check_present,
    choice,
    integer,
    key_rules,
    number,
    walk,
)
from annkit.schema import resolved as resolve_config


def check_model(node: Any) -> None:
    walk(node, MODEL_SCHEMA, "model")
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
            group,
            name,
            schemas,
            f"Pick one with {group}=<name> (the files in configs/{group}/), not {group}.name=…, which only labels it.",
        )
    foreign = [k for k in node if k not in schemas[name]]
    if foreign and any(
        set(node) == set(other) for other in schemas.values()
    ):  # another option's keys: its name was edited
        raise AnnkitError(
            f"{group}.name={name}, but the {group} settings hold keys {name} does not have ({', '.join(map(str, foreign))}): "
            f"the name only labels a {group}. To switch, pick its file with {group}={name}, not {group}.name=…; "
            f"valid keys of {group}={name}: {', '.join(schemas[name])}."
        )
    walk(node, schemas[name], group)
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


def check_lr_find(node: Any) -> None:
    walk(node, LR_FIND_SCHEMA, "lr_find")
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
    **RUN_SCHEMA,
}


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
    if node.get("rule") not in RULES:
        raise AnnkitError(
            f"optimizer.rule={node.get('rule')!r} is not valid: expected one of {', '.join(RULES)} (backprop: the "
            f"gradients of the loss; perceptron: Rosenblatt's rule on a single step neuron, optimizer=perceptron)."
        )
    mult = node.get("head_lr_mult")
    if not (_is_num(mult) and mult > 0):
        raise AnnkitError(
            f"optimizer.head_lr_mult={mult!r} is not valid: expected a number > 0 (the output layer trains at "
            f"optimizer.lr × head_lr_mult; 1 = the same lr). Set it with optimizer.head_lr_mult=10."
        )
    lr = node.get("lr")
    if not (lr == "auto" or (_is_num(lr) and lr > 0)):
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
    if node.get("if_too_short", "refuse") not in ("constant", "refuse"):
        raise AnnkitError(
            f"scheduler.if_too_short={node['if_too_short']!r} is not valid: expected constant (a run too short for the "
            f"one-cycle warm-up trains at a constant lr) or refuse (such a run is an error)."
        )
    if node.get("_target_") is None:
        extra = sorted(set(node) - HYDRA_KEYS - SCHEDULER_KEYS)
        if extra:
            raise AnnkitError(f"scheduler=none takes no arguments, but got {', '.join(extra)}.")
        return
    cls = _target_class(
        node,
        "scheduler",
        torch.optim.lr_scheduler.LRScheduler,
        "torch.optim.lr_scheduler.OneCycleLR or torch.optim.lr_scheduler.CosineAnnealingLR",
    )
    if issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise AnnkitError(
            "ReduceLROnPlateau needs a metric at every step, which annkit does not wire yet; use scheduler=step or cosine."
        )
    _check_kwargs(node, "scheduler", cls, SCHEDULER_KEYS, SCHEDULER_FILLED)


def validate(cfg: DictConfig, schema: Mapping[str, Any] = TRAIN_SCHEMA) -> dict[str, Any]:
    """Check the whole config; return it resolved as plain containers. Raises AnnkitError."""
    resolved = resolve_config(cfg)
    walk(resolved, schema, "")
    if "optimizer" in schema:
        dry_run_optimization(resolved["optimizer"], resolved["scheduler"])
    if "model" in schema and resolved["model"]["norm"] == "batch" and resolved["trainer"]["batch_size"] < 2:
        raise AnnkitError(
            "model.norm=batch needs batches of at least 2 samples (batch norm divides by the batch's "
            "variance), but trainer.batch_size=1. Use a larger batch, or model.norm=layer / none."
        )
    if "model" in schema:
        portable(resolved)  # every path absolute (an example table's too) before anything reads or records it
    return resolved


EXAMPLE = "example:"  # dataset.path=example:iris.csv: a table shipped with annkit (src/annkit/examples/)


def example_file(name: str) -> Path:
    """The path of example table ``name`` shipped with annkit, or a paragraph listing the examples."""
    folder = files("annkit.examples")
    shipped = sorted(p.name for p in folder.iterdir() if p.name.endswith((".csv", ".yaml")))
    if name not in shipped:
        raise AnnkitError(
            f"{EXAMPLE}{name}: annkit ships no such example file. Its examples: "
            f"{', '.join(EXAMPLE + n for n in shipped)} (e.g. dataset.path={EXAMPLE}{shipped[0]})."
        )
    return Path(str(folder / name))


def absolute(value: str, base: Path) -> str:
    """A path of the config as an absolute path: ``example:<name>`` is a table shipped with annkit; a
    relative path is relative to ``base`` (where annkit runs); ``~`` is the home folder."""
    if value.startswith(EXAMPLE):
        return str(example_file(value[len(EXAMPLE) :]))
    return str(base / Path(value).expanduser())


def _is_column(csv: dict[str, Any], name: str, base: Path) -> bool:
    """Whether ``dataset.sample_weight=name`` names a column of the table (as the CSV loader decides)."""
    table = csv.get("path") or csv.get("train")
    if not (base / name).is_file():
        return True
    try:
        return table is not None and name in csv_columns(absolute(table, base), csv["delimiter"])
    except AnnkitError:
        return False  # the loader explains what is wrong with the table


def portable(resolved: dict[str, Any], cwd: Path | None = None) -> None:
    """Make every path of a train config absolute, in place (relative ones are relative to ``cwd``,
    the folder annkit runs in; see :func:`absolute`), so that the run's records (checkpoints,
    metrics.json, the overrides it stores) work from anywhere. A CSV's ``dataset.sample_weight``
    that names one of its columns stays a column name."""
    base = Path.cwd() if cwd is None else cwd
    for key in PATH_KEYS:
        group, _, name = key.rpartition(".")
        node = resolved.get(group) if group else resolved
        if not isinstance(node, dict) or node.get(name) is None:
            continue
        value = node[name]
        if key == "model.weights" and not isinstance(value, str):
            continue  # the layers inline
        if key == "dataset.sample_weight" and node.get("name") == "csv" and _is_column(node, value, base):
            continue  # a column of the table
        node[name] = [absolute(v, base) for v in value] if isinstance(value, list) else absolute(value, base)


def path_values(resolved: dict[str, Any]) -> dict[str, Any]:
    """``{dotted key: value}`` of the config's paths (:data:`PATH_KEYS`) that are set."""
    found = {}
    for key in PATH_KEYS:
        group, _, name = key.rpartition(".")
        node = resolved.get(group) if group else resolved
        if (
            isinstance(node, dict)
            and node.get(name) is not None
            and (key != "model.weights" or isinstance(node[name], str))
        ):
            found[key] = node[name]
    return found


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
    mults = [1.0] if optimizer.get("head_lr_mult", 1) == 1 else [1.0, float(optimizer["head_lr_mult"])]
    optimizer = {k: 1e-3 if v == "auto" else v for k, v in optimizer.items() if k not in OPTIMIZER_KEYS}
    scheduler = {k: 1e-3 if v == "auto" else v for k, v in scheduler.items()}
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1e-3 * m, "lr_mult": m} for m in mults]
    try:
        opt = instantiate(optimizer, _convert_="all")(groups)
    except (TypeError, ValueError, RuntimeError) as err:
        raise _torch_refused("optimizer", err) from None
    spec = {k: v for k, v in scheduler.items() if k not in SCHEDULER_KEYS}
    if spec.get("_target_") is None:
        return
    cls = get_class(spec["_target_"])
    params = inspect.signature(cls).parameters
    length = {name: 10_000 for name in ("total_steps", "T_max") if name in params}
    if issubclass(cls, torch.optim.lr_scheduler.OneCycleLR) and "max_lr" in spec:
        peaks = one_cycle_peaks(spec["max_lr"], mults)
        spec["max_lr"] = spec["max_lr"] if peaks is None else peaks
    try:
        sched = instantiate(spec, _convert_="all")(opt, **length)
        for _ in range(2):
            opt.step()
            sched.step()
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, KeyError) as err:
        raise _torch_refused("scheduler", err) from None


def one_cycle_peaks(max_lr: Any, mults: list[float]) -> list[float] | None:
    """OneCycleLR's max_lr for parameter groups at ``mults`` × lr (optimizer.head_lr_mult: the hidden layers, then
    the output layer): one number scales with each group's factor, a list gives one peak per group and must have
    one value per group. None: one number for one group, which torch takes as it is."""
    if isinstance(max_lr, (list, tuple)):
        if len(max_lr) != len(mults):
            groups = "the hidden layers, then the output layer" if len(mults) > 1 else "every layer"
            raise AnnkitError(
                f"scheduler.max_lr={list(max_lr)} gives {len(max_lr)} peak(s), but the optimizer has {len(mults)} "
                f"parameter group(s) ({groups}). Give one number (scheduler.max_lr=0.01; with optimizer.head_lr_mult "
                f"the output layer's peak is scaled by it), or one per group, e.g. scheduler.max_lr=["
                f"{', '.join(['0.01'] * len(mults))}]."
            )
        return [float(v) for v in max_lr]
    if len(mults) > 1 and isinstance(max_lr, (int, float)):
        return [max_lr * m for m in mults]
    return None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}; lists become JSON strings, None "null", bools "true"/"false"."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool) or value is None:
            flat[name] = json.dumps(value)
        elif isinstance(value, (int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat
