"""``annkit export checkpoint=<run dir | .safetensors> format=onnx|torch [out=…]``: a trained model for an application
that does not import annkit — validate → load the checkpoint → wrap it → export → verify → write.

:func:`export_checkpoint` is the only function that reads the config. The model is wrapped with the checkpoint's
preprocessing and head (:class:`annkit.export.Deployable`: raw inputs in, probabilities and class indices out),
exported, and run — by onnxruntime (CPU) or as the ExportedProgram — on a batch of the checkpoint's own validation
inputs (the run's split, read as ``annkit eval`` reads it; synthetic inputs in the data's own units where the data is
not on this machine). Its answers must equal annkit's own predictions (the path of ``annkit predict``) within
``tolerance``, every class index the same, or nothing is written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console

from annkit.checkpoint import architecture, load_model, resolve_checkpoint
from annkit.config import BOOL, choice, integer, number, validate
from annkit.data import load_data
from annkit.errors import AnnkitError, user_errors
from annkit.export import OPSET, OUTPUTS, Deployable, difference, metadata, run_onnx, to_onnx, to_torch
from annkit.inference import class_scores, head_from_meta, raw_columns, required_path, run_model
from annkit.schema import FILE_OR_NULL
from annkit.tasks.stored_data import dataset_spec
from annkit.tracking import facts_panel, shown

EXPORT_SCHEMA: dict[str, Any] = {
    "checkpoint": required_path(
        "checkpoint",
        "export",
        "a run dir (its best checkpoint) or a .safetensors file an "
        "annkit run wrote, e.g. checkpoint=outputs/train/runs/<time>",
    ),
    "format": choice("onnx", "torch"),
    "out": FILE_OR_NULL,
    "input_dtype": choice("auto", "uint8", "float32"),
    "samples": integer(1, 100_000),
    "tolerance": number(0.0, lo_open=True),
    "overwrite": BOOL,
}
OVERWRITE_KEY = "overwrite"
SUFFIX = {"onnx": ".onnx", "torch": ".pt2"}


def own_inputs(meta: dict[str, Any], ckpt: Any, n: int) -> tuple[np.ndarray, str]:
    """At most ``n`` raw inputs of the run's validation split, in the dataset's own units (uint8 images, or the raw
    columns: x1, x2 of a playground run); where the data is not on this machine, ``n`` synthetic ones."""
    md = meta["data"]
    try:
        spec, _ = dataset_spec(None, ckpt)
        spec = {**spec, "standardize": False} if "standardize" in spec else spec  # raw columns; the graph standardises
        data = load_data(spec, seed=meta["config"]["trainer"]["seed"], device=torch.device("cpu"))
    except (AnnkitError, KeyError) as err:
        rng = np.random.default_rng(0)
        if md["preprocessing"]["kind"] == "image":
            raw = rng.integers(0, 256, size=(n, *md["input_shape"]), dtype=np.uint8)
        else:
            raw = rng.normal(0.0, 3.0, size=(n, len(raw_columns(meta))))
        why = str(err).split(". ")[0]
        return raw, f"{n} synthetic inputs (the run's data is not on this machine: {why})"
    if md["preprocessing"]["kind"] == "image":
        raw = data.val.x[:n].cpu().numpy()
    elif md["name"] == "playground" and data.plane is not None:
        raw = np.asarray(data.plane.points["val"][:n], dtype=np.float64)
    else:
        raw = data.val.x[:n].cpu().numpy().astype(np.float64)
    return raw, f"the first {len(raw)} validation inputs of the run ({spec['name']})"


def annkit_answers(model: torch.nn.Module, meta: dict[str, Any], raw: np.ndarray) -> list[torch.Tensor]:
    """What annkit itself answers for ``raw`` (the path of ``annkit predict``), in the exported outputs' order."""
    head, activated, predicted = run_model(model, meta, raw, device=torch.device("cpu"), batch_size=1024)
    if head.task == "classification":
        return [class_scores(head, activated)[0], predicted]
    if head.task == "multilabel":
        return [activated, predicted.to(torch.int64)]
    return [activated]


def describe_input(meta: dict[str, Any], dtype: torch.dtype) -> str:
    md = meta["data"]
    if md["preprocessing"]["kind"] == "image":
        shape = "×".join(map(str, md["input_shape"]))
        return f"N×{shape} {str(dtype).removeprefix('torch.')} pixels 0–255 (the pixel mean and std inside)"
    columns, features = raw_columns(meta), md["preprocessing"]["features"]
    derived = f"; features {', '.join(features)} computed inside" if list(features) != columns else ""
    scaled = "; standardised with the run's μ, σ inside" if md["preprocessing"]["standardize"] else ""
    return f"N×{len(columns)} float32 rows, the columns {', '.join(columns)}{derived}{scaled}"


def export_checkpoint(cfg: DictConfig, run_dir: Path, console: Console | None = None) -> Path:
    """Export ``cfg.checkpoint`` as ``cfg.format``, verify it, write it; returns the file written."""
    started = time.perf_counter()
    resolved = validate(cfg, EXPORT_SCHEMA)  # every key checked before any file is read
    console = console or Console()
    fmt = resolved["format"]
    model, ckpt = load_model(resolve_checkpoint(Path(resolved["checkpoint"])), torch.device("cpu"))
    meta = ckpt.meta
    out = Path(resolved["out"]) if resolved["out"] else run_dir / f"model{SUFFIX[fmt]}"
    if out.exists() and not resolved["overwrite"]:
        raise AnnkitError(f"out={out} exists, and annkit export does not overwrite a file. Give another out=<file>, "
                          f"or overwrite=true to replace it.")  # fmt: skip
    image = meta["data"]["preprocessing"]["kind"] == "image"
    dtype = torch.uint8 if image and resolved["input_dtype"] in ("auto", "uint8") else torch.float32
    raw, source = own_inputs(meta, ckpt, resolved["samples"])
    expected = annkit_answers(model, meta, raw)
    x = torch.from_numpy(np.ascontiguousarray(raw)).to(dtype)
    module = Deployable(model, head_from_meta(meta, torch.device("cpu")), meta)
    info = metadata(meta, ckpt.path, describe_input(meta, dtype))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # torch.export.save wants its .pt2 ending
    try:
        if fmt == "onnx":
            how = f"torch.onnx ({to_onnx(module, x[:2], partial, info)} exporter), opset {OPSET}"
            got = run_onnx(partial, x)
            runner = "onnxruntime (CPU)"
        else:
            program = to_torch(module, x[:2], partial, info)
            how, runner = "torch.export (ExportedProgram)", "the ExportedProgram"
            with torch.no_grad():
                got = list(program.module()(x))
        worst, wrong = difference(got, expected)
        if worst > resolved["tolerance"] or wrong:
            raise AnnkitError(
                f"The exported model does not answer as annkit does on {source}: {runner} differs by up to "
                f"{worst:.3g} (tolerance {resolved['tolerance']:g}) and gives {wrong} other class indices. Nothing was "
                f"written. This is a bug in annkit's export for this model; "
                f"{'export with format=torch, or ' if fmt == 'onnx' else ''}raise the tolerance to see the file."
            )
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    facts = [
        ("checkpoint", shown(ckpt.path)), ("model", f"epoch {meta.get('epoch')} · {architecture(meta)}"),
        ("input", info["annkit.inputs"]), ("outputs", ", ".join(OUTPUTS[meta["data"]["task"]])),
        ("export", how),
        ("verified", f"{runner} on {source}: max |Δ| {worst:.2g} against annkit's own predictions"
                     + ("" if meta["data"]["task"] == "regression" else ", every class index the same")),
        ("metadata", ", ".join(info)),
        ("written", f"{shown(out)} · {out.stat().st_size:,} bytes · {time.perf_counter() - started:.1f} s"),
    ]  # fmt: skip
    facts_panel(console, "annkit export", facts, [])
    return out


def run(cfg: DictConfig) -> None:
    with user_errors():
        export_checkpoint(cfg, Path(HydraConfig.get().runtime.output_dir))
