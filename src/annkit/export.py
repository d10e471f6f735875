"""A trained checkpoint as a model an application runs without annkit: ONNX, or a torch.export program.

:class:`Deployable` wraps the checkpoint's network with what annkit does around it, so the exported graph takes
what a user has and returns what annkit reports:

- **in**: raw inputs in the dataset's own units — images as 0–255 pixels N×H×W (uint8, or float32 with
  ``input_dtype=float32``), table rows as their raw columns N×C (a playground model takes x1, x2 and computes its
  features — x1², x1·x2, sin x1, … — inside the graph); the checkpoint's preprocessing (pixel mean and std,
  feature μ and σ) is part of the graph;
- **out**: classification ``probabilities`` N×K and ``class_index`` N (int64); multi-label ``probabilities`` N×K
  and ``labels`` N×K (0/1); regression ``values`` N×T.

:func:`to_onnx` uses torch's dynamo exporter (falling back to the TorchScript one where it fails) at
:data:`OPSET`, with a dynamic batch dimension, and writes annkit's metadata into the model's ``metadata_props``:
the class names, the input names, the task, the annkit version, the source checkpoint's sha256.
:func:`to_torch` writes a ``torch.export`` ExportedProgram (``.pt2``) with the same metadata as ``annkit.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from annkit import __version__
from annkit.errors import AnnkitError
from annkit.head import Head

OPSET = 18
OUTPUTS = {"classification": ["probabilities", "class_index"], "multilabel": ["probabilities", "labels"],
           "regression": ["values"]}  # fmt: skip
EXTRA = 'pip install "annkit[export]"'  # onnx, onnxruntime, onnxscript


def _features(x: torch.Tensor, names: list[str]) -> torch.Tensor:
    """The playground's features of raw points N×2 (x1, x2), as annkit.data.playground computes them."""
    x1, x2 = x[:, 0], x[:, 1]
    table = {"x1": x1, "x2": x2, "x1_sq": x1 * x1, "x2_sq": x2 * x2, "x1_x2": x1 * x2, "sin_x1": torch.sin(x1),
             "sin_x2": torch.sin(x2)}  # fmt: skip
    return torch.stack([table[n] for n in names], dim=1)


class Deployable(nn.Module):
    """The checkpoint's network between annkit's preprocessing and its head: raw inputs in, answers out."""

    def __init__(self, model: nn.Module, head: Head, meta: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.head = model.eval(), head
        data = meta["data"]
        pre = data["preprocessing"]
        self.image = pre["kind"] == "image"
        self.derive = data["name"] == "playground" and list(pre["features"]) != ["x1", "x2"]
        self.features = [str(f) for f in pre.get("features") or []]
        if self.image:
            self.scale, self.shift = 1.0 / (255.0 * pre["std"]), pre["mean"] / pre["std"]
        elif pre["standardize"]:
            self.register_buffer("mu", torch.tensor(pre["mean"], dtype=torch.float64).float())
            self.register_buffer("sigma", torch.tensor(pre["std"], dtype=torch.float64).float())
        self.standardize = not self.image and bool(pre["standardize"])
        self.eval()  # an inference graph: batch norm's running statistics, no dropout

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.image:
            return x * self.scale - self.shift  # annkit.data.normalize: (x/255 − mean) / std
        if self.derive:
            x = _features(x, self.features)
        return (x - self.mu) / self.sigma if self.standardize else x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        activated = self.head.activate(self.model(self.prepare(x)))
        if self.head.task == "regression":
            return (activated,)
        if self.head.task == "multilabel":
            return activated, (activated > 0.5).to(torch.int64)
        if self.head.single_output:
            p = activated[:, 0]
            return torch.stack([1 - p, p], dim=1), (p > 0.5).to(torch.int64)
        return activated, activated.argmax(dim=1)


def metadata(meta: dict[str, Any], checkpoint: Path, inputs: str) -> dict[str, str]:
    """What an exported model says about itself (all strings: ONNX metadata_props are string pairs)."""
    data = meta["data"]
    return {
        "annkit.version": __version__, "annkit.task": data["task"], "annkit.classes": json.dumps(data["classes"]),
        "annkit.inputs": inputs, "annkit.outputs": json.dumps(OUTPUTS[data["task"]]),
        "annkit.source": checkpoint.name, "annkit.source_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "annkit.epoch": str(meta.get("epoch")),
    }  # fmt: skip


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise AnnkitError(
            f"format=onnx needs the packages onnx and onnxruntime, which are not installed. Install them with "
            f"{EXTRA} (or pip install onnx onnxruntime onnxscript), or export with format=torch, which needs only torch."
        ) from None
    return onnx, onnxruntime


def to_onnx(module: Deployable, example: torch.Tensor, path: Path, meta: dict[str, str]) -> str:
    """Write ``module`` as ONNX (opset :data:`OPSET`, batch dimension dynamic) with ``meta``; which exporter."""
    onnx, _ = _onnx_modules()
    names = OUTPUTS[module.head.task]
    how = "dynamo"
    try:
        program = torch.onnx.export(module, (example,), dynamo=True, opset_version=OPSET, input_names=["input"],
                                    output_names=names, dynamic_shapes=({0: torch.export.Dim("batch")},),
                                    verbose=False)  # fmt: skip
        program.save(str(path))
    except Exception:  # the dynamo exporter does not cover everything: the TorchScript exporter does this graph
        how = "torchscript"
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=names, dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in names}})  # fmt: skip
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return how


def run_onnx(path: Path, x: torch.Tensor) -> list[torch.Tensor]:
    """onnxruntime (CPU) on ``x``: the outputs as tensors."""
    _, ort = _onnx_modules()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(o) for o in session.run(None, {session.get_inputs()[0].name: x.numpy()})]


def to_torch(
    module: Deployable, example: torch.Tensor, path: Path, meta: dict[str, str]
) -> torch.export.ExportedProgram:
    """Write ``module`` as a torch.export ExportedProgram (``.pt2``, batch dimension dynamic) with ``meta``."""
    program = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path), extra_files={"annkit.json": json.dumps(meta)})
    return program


def difference(got: list[torch.Tensor], expected: list[torch.Tensor]) -> tuple[float, int]:
    """(the largest absolute difference of the float outputs, how many integer answers differ)."""
    worst, wrong = 0.0, 0
    for g, e in zip(got, expected):
        if e.dtype.is_floating_point:
            d = (g.double() - e.double()).abs()
            worst = max(worst, float(d.max()) if d.numel() else 0.0, math.inf if d.isnan().any() else 0.0)
        else:
            wrong += int((g.to(torch.int64) != e.to(torch.int64)).sum())
    return worst, wrong
