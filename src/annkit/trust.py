"""The trust boundary around checkpoints: what annkit takes from a ``.safetensors`` file's metadata.

A checkpoint may come from anyone. Its tensors are raw numbers (safetensors never unpickles), and
its JSON metadata is data: annkit checks it here before any of it is used, and refuses a file whose
metadata no annkit run would have written, in one paragraph that names the entry.

- ``overrides`` (the command line the run was started with, which ``resume=`` reapplies): each must
  be one of annkit's own config keys with a value of the right type, or one of annkit's config
  groups with an option annkit ships. Never a Hydra setting (``hydra.*``, ``hydra/…``), never a
  ``+``/``~``/``@`` form, a sweep or an ``${…}`` interpolation, and a class only from torch.optim.
- ``config``: the parts that rebuild the model and head (model, loss, dataset, the seed) must have
  the types the schema gives them; classes only from torch.optim.
- ``data``: task, class names, input shape and preprocessing, checked for type and size.

Nothing read here ever becomes code, a path annkit writes to, or a download.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.core.override_parser.types import OverrideType
from hydra.errors import HydraException

from annkit.config import (
    DATASET_SCHEMAS,
    HYDRA_KEYS,
    LOSS_SCHEMAS,
    MODEL_SCHEMA,
    TORCH_TARGET,
    check_present,
    key_rules,
)
from annkit.errors import AnnkitError
from annkit.models import make_activation
from annkit.overrides import _PARSER, group_options
from annkit.schema import NORM_NAMES, OUTPUT_ACTIVATIONS, TASK_METRICS

SWEEP_ONLY = ("hparams_search",)  # groups that only steer a sweep: a resumed run (one job) leaves them out
MAX_INPUTS = 10**8  # input features a checkpoint may claim (a 10,000 × 10,000 image); more is not a real run


def untrusted(path: Path | str, what: str) -> AnnkitError:
    return AnnkitError(
        f"{path} is refused: {what}. annkit's runs write only their own config keys into a checkpoint, so this "
        f"file was made or edited by something else; annkit uses nothing from it, and nothing was run or changed. "
        f"Use a checkpoint written by an annkit run, unedited."
    )


def _interpolated(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return any(_interpolated(k) or _interpolated(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_interpolated(v) for v in value)
    return False


def replayable(stored: Any, path: Path | str) -> list[str]:
    """The overrides a checkpoint stored, checked one by one as if the user had typed them, as the
    words ``resume=`` reapplies (``resume=`` itself and sweep-only groups left out)."""
    if stored is None:
        return []
    if not isinstance(stored, list) or not all(isinstance(o, str) for o in stored):
        raise untrusted(path, f"its 'overrides' entry is {type(stored).__name__}, not a list of key=value words")
    words = []
    for word in stored:
        why = _why_not(word)
        if why is not None:
            raise untrusted(path, f"the command line it stores holds {word!r}, which {why}")
        key = word.split("=", 1)[0]
        if key != "resume" and key not in SWEEP_ONLY:
            words.append(word)
    return words


def _why_not(word: str) -> str | None:
    """Why a stored override is not one an annkit run writes (None when it is)."""
    try:
        o = _PARSER.parse_overrides([word])[0]
    except HydraException:
        return "is not an override Hydra's grammar reads"
    key = o.key_or_group
    if key.split(".")[0].split("/")[0] == "hydra":
        return "is a Hydra setting (hydra.* and hydra/… never come from a checkpoint)"
    if o.type != OverrideType.CHANGE or o.package is not None:
        return "adds, deletes or moves a key (+, ~, @): only plain key=value settings are taken from a checkpoint"
    if o.is_sweep_override():
        return "is a sweep (a list of values), not one value"
    value = o.value()
    if _interpolated(value):
        return "holds an interpolation (${…}), which could read anything; only plain values are taken from a checkpoint"
    if "." not in key and key != "resume":
        options = group_options(key)
        if options is None:
            return "names a config group annkit does not have"
        if value is not None and value not in options:
            return (
                f"names an option of config group {key} that annkit does not ship (its options: {', '.join(options)})"
            )
        return None
    leaf = key.rsplit(".", 1)[-1]
    if leaf in HYDRA_KEYS and not (leaf == "_target_" and isinstance(value, str) and TORCH_TARGET.fullmatch(value)):
        return "names a class outside torch.optim (or another instantiation key), which annkit would import"
    rules = key_rules(key)
    if rules is None:
        return "is not a key of annkit's config"
    if rules and not any(rule.check(value) for rule in rules):
        return f"has a value of the wrong type (expected {rules[0].expected})"
    return None


def check_meta(meta: Any, path: Path | str) -> None:
    """Refuse checkpoint metadata that no annkit run writes (see the module's docstring)."""
    if not isinstance(meta, dict):
        raise untrusted(path, "its metadata is not a JSON object")
    replayable(meta.get("overrides"), path)
    for key in ("epoch", "step", "batch"):
        if key in meta and not (isinstance(meta[key], int) and not isinstance(meta[key], bool) and meta[key] >= 0):
            raise untrusted(path, f"its '{key}' is {meta[key]!r}, not a whole number ≥ 0")
    if "device" in meta and not (
        isinstance(meta["device"], str) and re.fullmatch(r"(cpu|mps|cuda)(:\d+)?", meta["device"])
    ):
        raise untrusted(path, f"its 'device' is {meta['device']!r}, not a device annkit trains on")
    if "config" in meta:
        _check_config(meta["config"], path)
    if "data" in meta:
        _check_data(meta["data"], path)
    if "model" in meta or "head" in meta:
        _check_specs(meta, path)


def _check_config(config: Any, path: Path | str) -> None:
    if not isinstance(config, dict):
        raise untrusted(path, "its 'config' is not a mapping")
    try:
        for group, schemas in (("dataset", DATASET_SCHEMAS), ("loss", LOSS_SCHEMAS)):
            node = config.get(group)
            if node is not None:
                if not isinstance(node, dict) or node.get("name") not in schemas:
                    raise AnnkitError(f"its {group} has no {group} name annkit knows ({', '.join(schemas)})")
                check_present(node, schemas[node["name"]], group)
        if "model" in config:
            check_present(config["model"], MODEL_SCHEMA, "model")
            if "activation" in config["model"]:
                make_activation(config["model"]["activation"])
        for group in ("optimizer", "scheduler"):
            target = (config.get(group) or {}).get("_target_") if isinstance(config.get(group), dict) else None
            if target is not None and not (isinstance(target, str) and TORCH_TARGET.fullmatch(target)):
                raise AnnkitError(f"its {group}._target_ {target!r} is not a torch.optim class")
        seed = (config.get("trainer") or {}).get("seed", 0) if isinstance(config.get("trainer"), dict) else 0
        if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32):
            raise AnnkitError(f"its trainer.seed {seed!r} is not a seed")
    except AnnkitError as err:
        raise untrusted(path, f"its stored config does not hold: {str(err).rstrip('.')}") from None


def _numbers(value: Any, n: int | None = None) -> bool:
    items = value if isinstance(value, list) else [value]
    return (n is None or len(items) == n) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in items
    )


def _check_data(data: Any, path: Path | str) -> None:
    """The data section that prepares inputs and names outputs: types and sizes a run can have."""
    if not isinstance(data, dict):
        raise untrusted(path, "its 'data' is not a mapping")
    bad = None
    classes, shape, pre = data.get("classes"), data.get("input_shape"), data.get("preprocessing")
    if data.get("task") not in TASK_METRICS:
        bad = f"task {data.get('task')!r} is not one of {', '.join(TASK_METRICS)}"
    elif not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        bad = "classes is not a list of names"
    elif not (
        isinstance(shape, list)
        and shape
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
        and math.prod(shape) <= MAX_INPUTS
    ):
        bad = f"input_shape {shape!r} is not a list of sizes ≥ 1 (at most {MAX_INPUTS:,} inputs)"
    elif "output_activation" in data and data["output_activation"] not in OUTPUT_ACTIVATIONS:
        bad = f"output_activation {data.get('output_activation')!r} is not one of {', '.join(OUTPUT_ACTIVATIONS)}"
    elif pre is None:
        pass  # weights for fine-tuning only: eval and predict refuse a checkpoint without preprocessing
    elif not isinstance(pre, dict) or pre.get("kind") not in ("image", "table"):
        bad = "preprocessing is not an image's or a table's"
    elif pre["kind"] == "image" and not (_numbers(pre.get("mean")) and _numbers(pre.get("std")) and pre["std"] > 0):
        bad = "the image preprocessing's mean and std are not numbers (std > 0)"
    elif pre["kind"] == "table":
        features = pre.get("features")
        if not (
            isinstance(features, list)
            and all(isinstance(f, str) for f in features)
            and isinstance(pre.get("standardize"), bool)
        ):
            bad = "the table preprocessing has no feature names or standardize flag"
        elif pre["standardize"] and not (
            _numbers(pre.get("mean"), len(features))
            and _numbers(pre.get("std"), len(features))
            and all(s > 0 for s in pre["std"])
        ):
            bad = "the table preprocessing's μ and σ are not one number per feature (σ > 0)"
    plane = data.get("plane")
    if not bad and plane is not None and not _plane(plane):
        bad = "plane is not an extent of 4 finite numbers (min < max) with 2 axis names"
    if bad:
        raise untrusted(path, f"its data section does not hold: {bad}")


def _plane(plane: Any) -> bool:
    """A 2-D run's plane: ``{"extent": [x1 min, x1 max, x2 min, x2 max], "axes": [name, name]}``."""
    if not (isinstance(plane, dict) and set(plane) == {"extent", "axes"} and _numbers(plane["extent"], 4)):
        return False
    x0, x1, y0, y1 = plane["extent"]
    axes = plane["axes"]
    return x0 < x1 and y0 < y1 and isinstance(axes, list) and len(axes) == 2 and all(isinstance(a, str) for a in axes)


MODEL_SPEC = ("in_features", "hidden", "out_features", "activation", "dropout", "norm", "input_dropout")
HEAD_SPEC = ("task", "names", "loss", "output", "label_smoothing", "pos_weight")


def _count(v: Any, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= hi


def _check_specs(meta: dict[str, Any], path: Path | str) -> None:
    """The constructor arguments of the model and the head (written since issue 16): exactly the arguments, each of
    a type and size a run can have, and agreeing with the data section."""
    model, head, data = meta.get("model"), meta.get("head"), meta.get("data")
    bad = None
    if not isinstance(model, dict) or tuple(model) != MODEL_SPEC:
        bad = f"its model is not the arguments {', '.join(MODEL_SPEC)}"
    elif not (_count(model["in_features"], MAX_INPUTS) and _count(model["out_features"], MAX_INPUTS)
              and isinstance(model["hidden"], list) and all(_count(w, MAX_INPUTS) for w in model["hidden"])):  # fmt: skip
        bad = "its model's widths are not whole numbers ≥ 1"
    elif not (_numbers([model["dropout"], model["input_dropout"]]) and 0 <= model["dropout"] < 1
              and 0 <= model["input_dropout"] < 1) or model["norm"] not in NORM_NAMES:  # fmt: skip
        bad = "its model's dropout or norm is not one a run can have"
    elif not isinstance(head, dict) or tuple(head) != HEAD_SPEC:
        bad = f"its head is not the arguments {', '.join(HEAD_SPEC)}"
    elif (
        head["task"] not in TASK_METRICS or head["loss"] not in LOSS_SCHEMAS or head["output"] not in OUTPUT_ACTIVATIONS
    ):
        bad = "its head's task, loss or output activation is not one annkit has"
    elif not (_numbers(head["label_smoothing"]) and (head["pos_weight"] is None or _numbers(head["pos_weight"]))):
        bad = "its head's label smoothing or pos_weight is not a number"
    elif isinstance(data, dict) and (head["names"] != data.get("classes") or head["task"] != data.get("task")):
        bad = "its head's task and names differ from its data section's"
    if bad:
        raise untrusted(path, bad)
    try:
        make_activation(model["activation"])
    except AnnkitError as err:
        raise untrusted(path, f"its model's activation does not hold: {str(err).rstrip('.')}") from None
