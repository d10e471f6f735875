"""Fine-tuning: start from another run's weights, keep some layers fixed, give the head its own lr.

``model.init_from=<checkpoint>`` loads every tensor whose name and shape agree with the new
model; the rest keep their fresh initialisation. When the checkpoint's classes differ from the
new data's (other names, or another number of them), the output layer (the head) is always
fresh, since its rows would mean other classes. ``model.freeze`` keeps dense layers fixed (see
:meth:`annkit.models.MLP.freeze`); ``optimizer.head_lr_mult`` puts the output layer in its own
parameter group at lr × mult.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from annkit.checkpoint import (
    Match,
    architecture,
    describe_mismatch,
    load_checkpoint,
    match_state,
    model_spec,
    shape_text,
)
from annkit.errors import AnnkitError
from annkit.models import MLP


@dataclass
class InitReport:
    """What ``model.init_from`` did, tensor by tensor."""

    path: str
    source: str  # the checkpoint's architecture, e.g. 'MLP 784 → 64 → 5 (relu)'
    epoch: int
    match: Match
    reset: list[str]  # head tensors that fitted but stay fresh because the classes differ
    source_classes: list[str]

    def rows(self, model_state: dict[str, torch.Tensor]) -> list[tuple[str, str, str, str]]:
        """(tensor, shape here, shape in the checkpoint, status) for the table."""
        saved = {name: (a, b) for name, a, b in self.match.mismatched}
        out = []
        for name, tensor in model_state.items():
            here = shape_text(tuple(tensor.shape))
            if name in self.reset:
                out.append((name, here, here, "fresh: the classes differ"))
            elif name in self.match.loaded:
                out.append((name, here, here, "loaded"))
            elif name in saved:
                out.append((name, here, shape_text(saved[name][0]), "fresh: shape differs"))
            else:
                out.append((name, here, "–", "fresh: not in the checkpoint"))
        out += [(name, "–", "", "unused: not in this model") for name in self.match.unexpected]
        return out

    def counts(self) -> dict[str, int]:
        return {
            "loaded": len(self.match.loaded),
            "shape_mismatched": len(self.match.mismatched),
            "reset": len(self.reset),
            "missing": len(self.match.missing),
            "unexpected": len(self.match.unexpected),
        }

    def summary(self) -> dict[str, Any]:
        """For metrics.json."""
        return {
            "path": self.path,
            "source": self.source,
            "epoch": self.epoch,
            "source_classes": self.source_classes,
            "loaded": self.match.loaded,
            "reset_head": self.reset,
            "missing": self.match.missing,
            "unexpected": self.match.unexpected,
            "shape_mismatched": [
                {"name": n, "checkpoint": list(a), "model": list(b)} for n, a, b in self.match.mismatched
            ],
        }

    def describe(self) -> str:
        c = self.counts()
        fresh = c["shape_mismatched"] + c["reset"] + c["missing"]
        return f"{self.path} (epoch {self.epoch}, {self.source}): {c['loaded']} tensors loaded, {fresh} fresh" + (
            f", {c['unexpected']} unused" if c["unexpected"] else ""
        )


def init_from(model: MLP, path: str, classes: Sequence[str], device: torch.device) -> InitReport:
    """Load the tensors of checkpoint ``path`` that fit ``model`` (same name and shape); a fresh
    head when the checkpoint's classes are not ``classes``. Refuses a checkpoint nothing fits."""
    ckpt = load_checkpoint(path, device)
    if "data" not in ckpt.meta or "config" not in ckpt.meta:
        raise AnnkitError(
            f"model.init_from={path}: the file has no annkit run metadata (config, data); give a checkpoint an annkit run wrote."
        )
    source_classes = list(ckpt.meta["data"]["classes"])
    saved = dict(ckpt.model)
    reset = []
    if source_classes != list(classes):
        reset = [
            k
            for k in model.state_dict()
            if k.startswith(model.head_prefix())
            and k in saved
            and tuple(saved[k].shape) == tuple(model.state_dict()[k].shape)
        ]
        for k in reset:
            del saved[k]
    match = match_state(model.state_dict(), saved)
    match.unexpected = [k for k in match.unexpected if k not in reset]
    if not any(name in dict(model.named_parameters()) for name in match.loaded):  # a step counter alone fits nothing
        raise AnnkitError(
            f"model.init_from={path}: none of its tensors fits this model, so nothing could be loaded — "
            f"{describe_mismatch(match)}. The checkpoint holds a {architecture(ckpt.meta)}. Fine-tuning loads the "
            f"tensors whose names and shapes agree: give this run the checkpoint's hidden layers (model.hidden="
            f"{model_spec(ckpt.meta)['hidden']}) and data of the same input size, or drop model.init_from."
        )
    model.load_state_dict({k: saved[k] for k in match.loaded}, strict=False)
    return InitReport(
        path=str(path),
        source=architecture(ckpt.meta),
        epoch=int(ckpt.meta.get("epoch", 0)),
        match=match,
        reset=reset,
        source_classes=source_classes,
    )


def layer_names(model: MLP) -> list[str]:
    """'0: Linear 784→1024', …, 'L: Linear 1024→10 (output)' for messages."""
    blocks = model.dense_layers()
    names = []
    for i, block in enumerate(blocks):
        linear = block[0]
        assert isinstance(linear, nn.Linear)
        names.append(
            f"{i}: Linear {linear.in_features}→{linear.out_features}" + (" (output)" if i == len(blocks) - 1 else "")
        )
    return names


def resolve_freeze(spec: Any, model: MLP) -> list[int]:
    """``model.freeze`` (null | all_but_head | indices) as sorted layer numbers 0 … L; explains bad indices."""
    if spec is None:
        return []
    n = len(model.dense_layers())
    if spec == "all_but_head":
        if n == 1:
            raise AnnkitError(
                "model.freeze=all_but_head, but the model has no hidden layer (model.hidden=[]): its only layer is the "
                "head, so nothing would train. Give it hidden layers, or drop model.freeze."
            )
        return list(range(n - 1))
    bad = [i for i in spec if not -n <= i < n]
    if bad:
        raise AnnkitError(
            f"model.freeze={list(spec)} names layer(s) {bad} that this model does not have. Its dense layers are "
            f"{'; '.join(layer_names(model))} (negative indices count from the output layer: -1). "
            f"Give indices in that range, e.g. model.freeze=[0], or model.freeze=all_but_head."
        )
    layers = sorted({i % n for i in spec})
    if len(layers) == n:
        raise AnnkitError(
            f"model.freeze={list(spec)} freezes every layer of the model ({'; '.join(layer_names(model))}), so nothing "
            f"would train. Leave at least the output layer trainable, e.g. model.freeze=all_but_head."
        )
    return layers


def param_groups(model: MLP, lr: float, head_lr_mult: float) -> list[Any]:
    """The trainable parameters for the optimizer: one list, or, with ``head_lr_mult`` ≠ 1, a body
    group and a head group at lr × mult (its ``lr_mult`` key tells schedulers the ratio)."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if head_lr_mult == 1:
        return [p for _, p in trainable]
    prefix = model.head_prefix()
    body = [p for name, p in trainable if not name.startswith(prefix)]
    head = [p for name, p in trainable if name.startswith(prefix)]
    groups: list[dict[str, Any]] = [{"params": body, "lr_mult": 1.0}] if body else []
    return [*groups, {"params": head, "lr": lr * head_lr_mult, "lr_mult": head_lr_mult}]


def report_markdown(report: InitReport, model_state: dict[str, torch.Tensor]) -> str:
    """The init_from table as markdown (TensorBoard's text tab)."""
    lines = [f"init_from {report.describe()}", "", "| tensor | shape | checkpoint | status |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in report.rows(model_state)]
    return "\n".join(lines)
