"""Weights given by hand (``model.weights``): every weight and bias of the configured MLP, layer by layer.

The first artificial neurons were not trained: their weights were the answer (deck 001, McCulloch and Pitts).
``model.weights`` is a YAML or JSON file, or the same list inline for a tiny net::

    # layer 0: one row per unit of the layer, one number per input; then its biases
    - weight: [[2, 2]]
      bias: [-1.5]

(a mapping ``{layers: [...]}`` is read too). There must be one entry per dense layer, the output layer last, and
each ``weight`` must be units × inputs of its layer; a mismatch is one paragraph naming the layer and both shapes.
The file is data: read by :func:`annkit.records.read_data` (no YAML aliases, a size and depth limit), numbers
only, nothing in it runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from annkit.errors import AnnkitError
from annkit.models import MLP
from annkit.records import MAX_DATA_BYTES, read_data

EXAMPLE = "- weight: [[2, 2]]\n  bias: [-1.5]"


def read_weights(spec: str | list[Any], what: str = "model.weights") -> list[Any]:
    """The layers of ``spec``: a .yaml/.yml/.json file's list (or its ``layers``), or an inline list as it is."""
    if isinstance(spec, list):
        return spec
    path = Path(spec)
    if not path.is_file():
        raise AnnkitError(
            f"{what}={spec}: there is no such file. Give a YAML or JSON file with one entry per layer "
            f"({{weight: [[…]], bias: […]}}), or the list inline: {what}='[{{weight: [[2, 2]], bias: [-1.5]}}]'."
        )
    if path.stat().st_size > MAX_DATA_BYTES:  # said here with what to use instead; read_data checks it too
        raise AnnkitError(f"{what}={spec} is {path.stat().st_size:,} bytes; a weights file annkit reads is at most "
                          f"{MAX_DATA_BYTES:,}. For trained weights use model.init_from=<checkpoint>.")  # fmt: skip
    try:
        tree = read_data(path)
    except ValueError as err:
        raise AnnkitError(
            f"{what}={spec} cannot be read: {err}. The file holds a list, per layer:\n{EXAMPLE}"
        ) from None
    if isinstance(tree, Mapping) and set(tree) == {"layers"}:
        tree = tree["layers"]
    if not isinstance(tree, list):
        raise AnnkitError(
            f"{what}={spec} holds {type(tree).__name__}, not a list of layers. Write, per layer:\n{EXAMPLE}"
        )
    return tree


def _matrix(value: Any) -> list[list[float]] | None:
    """``value`` as a list of equal rows of finite numbers, or None."""
    rows = value if isinstance(value, list) and value and all(isinstance(r, list) for r in value) else None
    if rows is None or len({len(r) for r in rows}) != 1 or not rows[0]:
        return None
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for r in rows for v in r)
    return [[float(v) for v in r] for r in rows] if ok else None


def set_weights(model: MLP, layers: list[Any], what: str = "model.weights") -> None:
    """Copy ``layers`` (one ``{weight, bias}`` per dense layer) into ``model``, after checking every shape."""
    blocks = model.dense_layers()
    if len(layers) != len(blocks):
        sizes = " → ".join(
            str(w) for w in [model.spec["in_features"], *model.spec["hidden"], model.spec["out_features"]]
        )
        raise AnnkitError(
            f"{what} gives {len(layers)} layer{'s' * (len(layers) != 1)}, but the model ({sizes}) has {len(blocks)} "
            f"dense layers: one entry per layer, the output layer last. Give {len(blocks)} entries, or change "
            f"model.hidden."
        )
    tensors = []
    for i, (entry, block) in enumerate(zip(layers, blocks)):
        linear = block[0]
        name = "the output layer" if i == len(blocks) - 1 else f"layer {i}"
        units, inputs = linear.weight.shape
        if not isinstance(entry, Mapping) or set(entry) != {"weight", "bias"}:
            raise AnnkitError(
                f"{what}: {name} (entry {i}) must be a mapping with exactly weight and bias, e.g.\n{EXAMPLE}"
            )
        weight, bias = _matrix(entry["weight"]), _matrix([entry["bias"]] if isinstance(entry["bias"], list) else None)
        if weight is None or bias is None:
            raise AnnkitError(f"{what}: {name}'s weight must be rows of finite numbers ([[…], …]) and its bias a list "
                              f"of finite numbers ([…]).")  # fmt: skip
        got = (len(weight), len(weight[0]))
        if got != (units, inputs):
            raise AnnkitError(
                f"{what}: {name}'s weight is {got[0]}×{got[1]}, but the model's {name} takes {units}×{inputs}: one "
                f"row per unit ({units}), one number per input ({inputs}). Fix the rows of entry {i}, or change "
                f"model.hidden to match the weights."
            )
        if len(bias[0]) != units:
            raise AnnkitError(f"{what}: {name}'s bias has {len(bias[0])} numbers, but the layer has {units} units: "
                              f"one bias per unit.")  # fmt: skip
        tensors.append((linear, torch.tensor(weight), torch.tensor(bias[0])))
    with torch.no_grad():
        for linear, weight, bias in tensors:
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
