"""A trained checkpoint applied to data: its head, its preprocessing, batched predictions, the table.

Everything here takes plain arguments (a checkpoint's ``meta``, tensors, arrays); ``annkit eval``
and ``annkit predict`` (:mod:`annkit.tasks`) read the config and wire these together.

Inputs are always prepared with the *checkpoint's* statistics — the pixel mean and std, or the
features' μ and σ, of the run's training split (``meta["data"]["preprocessing"]``) — never with
statistics recomputed from the new data, which would shift every input the model sees:

- images: model input = (pixel/255 − mean) / std  (:func:`annkit.data.preprocess.normalize`);
- tables: x' = (x − μ_train) / σ_train when the run standardised, else x; for ``dataset=playground``
  the features (x1, x2, x1_sq, …) are first computed from the raw point (x1, x2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from annkit.checkpoint import head_spec
from annkit.data.playground import make_features
from annkit.data.preprocess import normalize
from annkit.errors import AnnkitError
from annkit.head import Head

Prepare = Callable[[torch.Tensor, bool], torch.Tensor]
RAW_POINT = ["x1", "x2"]  # a playground checkpoint's raw inputs, from which its features are computed


def head_from_meta(meta: dict[str, Any], device: torch.device) -> Head:
    """The run's head (task, classes, loss, output activation, pos_weight) from its checkpoint."""
    return Head(**head_spec(meta), device=device)


def image_preparer(preprocessing: dict[str, Any]) -> Prepare:
    """uint8 batch → the model's input, with the checkpoint's pixel mean and std (no augmentation)."""
    mean, std = preprocessing["mean"], preprocessing["std"]
    return lambda images, train=False: normalize(images, mean, std)


def standardized(x: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """Feature rows (N×F) as the model saw them in training: (x − μ) / σ with the checkpoint's μ, σ
    (computed in float64, then float32, as annkit.data.tabular does), or x itself."""
    if not preprocessing["standardize"]:
        return np.asarray(x).astype(np.float32)
    mean = np.asarray(preprocessing["mean"], dtype=np.float64)
    std = np.asarray(preprocessing["std"], dtype=np.float64)
    return ((x - mean) / std).astype(np.float32)


def raw_columns(meta: dict[str, Any]) -> list[str]:
    """The CSV columns a table checkpoint needs: x1, x2 for a playground run (its features are
    computed from them), else the model's feature columns in order."""
    return list(RAW_POINT) if meta["data"]["name"] == "playground" else list(meta["data"]["preprocessing"]["features"])


def table_inputs(raw: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """The model's float32 input rows from the raw columns of :func:`raw_columns` (N×C): the
    playground's features computed from (x1, x2), or the columns themselves, as float32 (as the
    loaders store them), then the checkpoint's standardisation — the numbers training saw."""
    pre = meta["data"]["preprocessing"]
    x = make_features(raw, pre["features"]) if meta["data"]["name"] == "playground" else raw.astype(np.float32)
    return standardized(x, pre)


def preparer(meta: dict[str, Any]) -> Prepare:
    """How the model's batches are prepared: images with the checkpoint's pixel mean and std; table rows as they
    are (:func:`table_inputs` standardised them once)."""
    pre = meta["data"]["preprocessing"]
    return image_preparer(pre) if pre["kind"] == "image" else (lambda batch, train=False: batch)


def raw_inputs(x: Any, meta: dict[str, Any]) -> np.ndarray:
    """Inputs given from Python, in the dataset's own units, as ``annkit predict`` reads them from files: uint8
    N×H×W images (one H×W image is one input), or N×C rows of the raw columns (:func:`raw_columns`; one row of C
    numbers is one input). Anything else is refused with what is expected."""
    md = meta["data"]
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if md["preprocessing"]["kind"] == "image":
        shape = tuple(md["input_shape"])
        a = a[None] if a.shape == shape else a
        if a.ndim != len(shape) + 1 or a.shape[1:] != shape:
            raise AnnkitError(
                f"The inputs have shape {tuple(np.shape(x))}, but this checkpoint's model takes {'×'.join(map(str, shape))} "
                f"images ({md['name']}): give one image of that shape or a batch N×{'×'.join(map(str, shape))}."
            )
        if a.dtype == np.uint8:
            return a
        ok = a.dtype.kind in "iuf" and a.size > 0 and np.all(np.isfinite(a)) and a.min() >= 0 and a.max() <= 255
        if not ok or not np.array_equal(a, np.round(a)):
            low, high = (float(a.min()), float(a.max())) if a.size and a.dtype.kind in "iuf" else (math.nan, math.nan)
            raise AnnkitError(
                f"The images hold {a.dtype} values from {low:g} to {high:g}, but annkit takes pixels in the dataset's "
                f"own units: whole numbers 0…255 (uint8), as {md['name']} stores them; the checkpoint's mean and std are "
                f"applied for you. Images scaled to 0…1 need (x * 255).round() first; normalised ones, undo it first."
            )
        return a.astype(np.uint8)
    columns = raw_columns(meta)
    a = a[None] if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[1] != len(columns) or a.dtype.kind not in "biuf" or not np.all(np.isfinite(a)):
        raise AnnkitError(
            f"The inputs have shape {tuple(np.shape(x))} and dtype {a.dtype}, but this checkpoint's model takes rows of "
            f"{len(columns)} finite numbers, the columns [{', '.join(columns)}] in that order, in the dataset's own "
            f"units (its preprocessing is applied for you): give one row of {len(columns)} numbers or an N×{len(columns)} "
            f"array."
        )
    return a.astype(np.float64)


def run_model(model: torch.nn.Module, meta: dict[str, Any], raw: np.ndarray, *, device: torch.device,
              batch_size: int) -> tuple[Head, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(head, ŷ, prediction) of the raw inputs (:func:`raw_inputs`, or what ``annkit predict`` read from files):
    prepared with the checkpoint's statistics, then :func:`predict`. ``annkit predict`` and ``annkit.load(…).predict``
    both come through here."""
    table = meta["data"]["preprocessing"]["kind"] != "image"
    x = torch.from_numpy(table_inputs(raw, meta) if table else raw).to(device)
    head = head_from_meta(meta, device)
    activated, predicted = predict(model, head, x, batch_size=batch_size, prepare=preparer(meta))
    return head, activated, predicted


def check_same_task(ckpt_path: Any, meta_data: dict[str, Any], dataset: str, task: str, names: Sequence[str]) -> None:
    """The data must have the checkpoint's task and class / label / target names, in its order."""
    if meta_data["task"] == task and list(meta_data["classes"]) == list(names):
        return
    raise AnnkitError(
        f"{ckpt_path} was trained for {meta_data['task']} with {len(meta_data['classes'])} "
        f"{what_names(meta_data['task'])} [{', '.join(meta_data['classes'])}], but dataset {dataset} is {task} with "
        f"{len(names)} {what_names(task)} [{', '.join(names)}]. A checkpoint can only be scored on data with the same "
        f"task and the same names in the same order. Leave out dataset= to score it on its own dataset "
        f"({meta_data['name']}), or pick a dataset with these {what_names(meta_data['task'])}."
    )


def what_names(task: str) -> str:
    return {"classification": "classes", "multilabel": "labels"}.get(task, "targets")


def predict(
    model: torch.nn.Module, head: Head, x: torch.Tensor, *, batch_size: int, prepare: Prepare
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ŷ, prediction) for every row of ``x`` (on the model's device), on the host.

    ŷ = head.activate(z): N×outputs probabilities (classification, multi-label) or values
    (regression); prediction: N class indices, N×K bools, or N×T values. One forward pass per
    batch, no per-sample Python; the host reads the results once."""
    activated, predicted = [], []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            z = model(prepare(x[start : start + batch_size], False))
            activated.append(head.activate(z))
            predicted.append(head.predict(z))
    return torch.cat(activated).float().cpu(), torch.cat(predicted).cpu()


def class_scores(head: Head, activated: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(N×K per-class scores, whether they are probabilities). One sigmoid output p (binary bce/mse)
    becomes [1 − p, p]; softmax rows are probabilities; other outputs (mse with identity / tanh /
    per-class sigmoid) are scores that need not sum to 1."""
    if head.single_output:
        p = activated[:, 0]
        return torch.stack([1 - p, p], dim=1), head.output == "sigmoid"
    return activated, head.output == "softmax"


def number(v: float) -> str:
    """A float32 as its shortest exact text (0.98543274, 1.2e-07)."""
    return str(np.float32(v))


def prediction_table(
    head: Head, labels: Sequence[str], activated: torch.Tensor, predicted: torch.Tensor
) -> tuple[list[str], list[list[str]]]:
    """The header and rows of predictions.csv: ``input``, then per task

    - classification: predicted (class name), confidence (its probability), p_<class> per class
      (score_<class> when the outputs are not probabilities);
    - multi-label: <label> (0/1) per label, then p_<label> per label;
    - regression: one column per target, named after it."""
    names = list(head.names)
    if head.task == "classification":
        scores, probabilities = class_scores(head, activated)
        prefix = "p_" if probabilities else "score_"
        confidence = scores.gather(1, predicted.view(-1, 1))[:, 0]
        header = ["input", "predicted", "confidence", *(f"{prefix}{n}" for n in names)]
        rows = [
            [label, names[c], number(conf), *map(number, row)]
            for label, c, conf, row in zip(labels, predicted.tolist(), confidence.tolist(), scores.tolist())
        ]
    elif head.task == "multilabel":
        prefix = "p_" if head.output == "sigmoid" else "score_"
        header = ["input", *names, *(f"{prefix}{n}" for n in names)]
        rows = [
            [label, *(str(int(b)) for b in on), *map(number, row)]
            for label, on, row in zip(labels, predicted.tolist(), activated.tolist())
        ]
    else:
        header = ["input", *names]
        rows = [[label, *map(number, row)] for label, row in zip(labels, predicted.tolist())]
    return header, rows


# ── shared by the eval and predict tasks ────────────────────────────────────────────────────────


def required_path(key: str, command: str, what: str) -> Callable[[Any], None]:
    """A config rule (see :func:`annkit.config.validate`): ``key`` must be a non-empty path; a
    missing one (null) is explained with ``what`` it should name."""

    def check(value: Any) -> None:
        if value is None:
            raise AnnkitError(f"annkit {command} needs {key}=<path>: {what}.")
        if not isinstance(value, str) or not value:
            raise AnnkitError(f"{key}={value!r} is not a path: give {what}, e.g. {key}=<path>.")

    check.expected = f"required: {what}"  # type: ignore[attr-defined]  # the config reference's value column
    return check


CHECKPOINT_WHAT = (
    "the .safetensors file an annkit run wrote, e.g. "
    "checkpoint=outputs/train/runs/<time>/checkpoints/best.safetensors (`ls outputs/train/runs` lists the runs)"
)
