"""``annkit eval``: score a checkpoint on a split — validate → load the checkpoint → load the data → evaluate → record.

``evaluate_checkpoint(cfg, run_dir)`` is the only function that reads the config. By default the
data is the checkpoint's own dataset config with the run's seed, so ``split=test`` (or ``val``,
``train``) is exactly the split the run held out, and the numbers reproduce the run's
metrics.json. ``dataset=<name>`` scores it on another dataset with the same task and class names;
``dataset.<key>=value`` changes keys of the checkpoint's own dataset config (e.g. where its
files are now). The inputs are always prepared with the checkpoint's statistics.

Writes ``<run dir>/metrics.json``: split, checkpoint, its epoch, the report under the split's name
(as in ``annkit train``'s metrics.json), n, wall_s.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from rich.text import Text

from annkit.checkpoint import architecture, load_model
from annkit.config import BOOL, DEVICE, TRAIN_SCHEMA, choice, integer, validate
from annkit.data import Batcher, Data, Split, load_data
from annkit.data.sources import DATASETS as IDX_DATASETS
from annkit.errors import AnnkitError, user_errors
from annkit.inference import (
    CHECKPOINT_WHAT,
    check_same_task,
    head_from_meta,
    image_preparer,
    required_path,
    standardized,
)
from annkit.loop import evaluate
from annkit.overrides import key_of
from annkit.records import finite_or_null, versions, write_record
from annkit.runtime import autocast_dtype, resolve_device
from annkit.tasks.stored_data import dataset_spec
from annkit.tracking import SUMMARY_COLUMNS, facts_panel, per_class, shown

log = logging.getLogger("annkit")
SPLITS = ("test", "val", "train")


def check_dataset(node: Any) -> None:
    """null (the checkpoint's dataset), keys to change in it (no name), or a whole dataset config."""
    if node is None or (isinstance(node, dict) and "name" not in node):
        return  # checked once merged with the checkpoint's config, before any data is read
    TRAIN_SCHEMA["dataset"](node)


EVAL_SCHEMA: dict[str, Any] = {
    "checkpoint": required_path("checkpoint", "eval", CHECKPOINT_WHAT),
    "split": choice(*SPLITS),
    "device": DEVICE,
    "batch_size": integer(1),
    "overwrite": BOOL,
    "dataset": check_dataset,
}
OVERWRITE_KEY = "overwrite"  # for the cli: a run dir that holds a run is moved aside only with overwrite=true


def model_inputs(
    split: Split, data: Data, meta_data: dict[str, Any], dataset: str, ckpt_path: Path, device: torch.device
) -> tuple[torch.Tensor, Any]:
    """(inputs, prepare) of ``split`` as the checkpoint's model takes them: raw uint8 images with the
    checkpoint's pixel mean/std, or feature rows standardised with the checkpoint's μ, σ."""
    pre, own = meta_data["preprocessing"], data.preprocessing
    if pre["kind"] == "image":
        if own.get("kind") != "image" or tuple(data.input_shape) != tuple(meta_data["input_shape"]):
            raise AnnkitError(
                f"{ckpt_path} takes {'×'.join(map(str, meta_data['input_shape']))} images, but dataset {dataset} gives "
                f"{'×'.join(map(str, data.input_shape))} {'images' if own.get('kind') == 'image' else 'feature rows'}. "
                f"Score it on images of that size (leave out dataset= for its own data)."
            )
        return split.x, image_preparer(pre)
    if own.get("kind") != "table" or list(own["features"]) != list(pre["features"]):
        got = own["features"] if own.get("kind") == "table" else ["×".join(map(str, data.input_shape)) + " images"]
        raise AnnkitError(
            f"{ckpt_path} takes the features [{', '.join(pre['features'])}], but dataset {dataset} gives "
            f"[{', '.join(got)}]. Give the same feature columns in the same order (dataset.features=[…]), or leave "
            f"out dataset= to score it on its own data."
        )
    x = standardized(split.x.cpu().numpy(), pre)  # the raw features (loaded unstandardised), with the checkpoint's μ, σ
    return torch.from_numpy(x).to(device), lambda batch, train=False: batch


def evaluate_checkpoint(cfg: DictConfig, run_dir: Path, console: Console | None = None) -> dict[str, Any]:
    """Score ``cfg.checkpoint`` on ``cfg.split``; print the report; write ``run_dir/metrics.json``."""
    started = time.perf_counter()
    resolved = validate(cfg, EVAL_SCHEMA)  # every key checked before any file is read
    console = console or Console()
    device = resolve_device(resolved["device"], key="device")
    model, ckpt = load_model(resolved["checkpoint"], device)
    meta, md = ckpt.meta, ckpt.meta["data"]
    spec, origin = dataset_spec(resolved["dataset"], ckpt)
    if spec["name"] in IDX_DATASETS and not spec.get(
        "classes"
    ):  # classes known without reading (or downloading) a file
        check_same_task(ckpt.path, md, spec["name"], "classification", IDX_DATASETS[spec["name"]].classes)
    raw = {**spec, "standardize": False} if "standardize" in spec else spec  # tables: the checkpoint standardises
    seed = meta["config"]["trainer"]["seed"]  # the run's split
    data = load_data(raw, seed=seed, device=device)
    check_same_task(ckpt.path, md, spec["name"], data.task, data.names)
    split_name = resolved["split"]
    split = getattr(data, split_name)
    if len(split) == 0:
        raise AnnkitError(
            f"The {split_name} split of dataset {spec['name']} is empty: pick another with split=test|val|train."
        )
    x, prepare = model_inputs(split, data, md, spec["name"], ckpt.path, device)
    head = head_from_meta(meta, device)
    amp = autocast_dtype(meta["config"]["trainer"]["precision"], device)  # as the run scored it: the same numbers
    report = evaluate(
        model, Batcher(x, split.y, resolved["batch_size"]), head=head, prepare=prepare, autocast_dtype=amp
    )

    metrics: dict[str, Any] = {
        "split": split_name,
        "checkpoint": str(ckpt.path.resolve()),
        "checkpoint_epoch": meta.get("epoch"),
        "checkpoint_step": meta.get("step"),
        "task": data.task,
        "names": list(data.names),
        "dataset": spec["name"],
        "data": {"origin": origin, "source": data.source, "seed": seed},
        "n": len(split),
        split_name: report,
        "wall_s": time.perf_counter() - started,
        "device": str(device),
        "precision": "bf16" if amp else "fp32",
        **versions(),
    }
    write_record(run_dir / "metrics.json", metrics)
    show(console, metrics, report, architecture(meta), run_dir)
    return metrics


def show(console: Console, metrics: dict[str, Any], report: dict[str, Any], arch: str, run_dir: Path) -> None:
    """The panel: what was scored, the split's metrics, the per-class table and confusion matrix."""
    split, task = metrics["split"], metrics["task"]
    facts = [
        ("checkpoint", shown(Path(metrics["checkpoint"]))),
        ("model", f"epoch {metrics['checkpoint_epoch']} · {arch}"),
        (
            "data",
            f"{metrics['dataset']} {split} split: {metrics['n']:,} samples · {metrics['data']['origin']}, seed "
            f"{metrics['data']['seed']}",
        ),
        ("source", metrics["data"]["source"]),
        ("inputs", "prepared with the checkpoint's statistics"),
        ("device", f"{metrics['device']} · {metrics['precision']}"),
    ]
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("split")
    columns = SUMMARY_COLUMNS[task]
    for name, _, _ in columns:
        table.add_column(name, justify="right")
    table.add_row(
        split,
        *(
            ("–" if report.get(key) is None or report[key] != report[key] else fmt.format(report[key]))
            for _, key, fmt in columns
        ),
    )
    parts: list[Any] = [Text(""), table]
    tables = per_class(task, {split: report}, report.get("support", {}), counts_header="n")
    if tables:
        parts += [Text(""), *tables]
    parts += [Text(""), Text(f"{metrics['wall_s']:.1f} s")]
    facts_panel(console, "annkit eval", facts, parts, after=[("metrics", f"{shown(run_dir)}/metrics.json")])
    log.info("result %s", json.dumps(finite_or_null({split: report})))


def prepare_argv(args: list[str]) -> list[str]:
    """``dataset.<key>=value`` without ``dataset=<name>`` changes a key of the checkpoint's own dataset
    config, which eval.yaml leaves empty (null): Hydra needs it as ``+dataset.<key>=value``."""
    named = any(key_of(a) == "dataset" and "=" in a for a in args)
    return [f"+{a}" if not named and a.startswith("dataset.") and "=" in a else a for a in args]


def run(cfg: DictConfig) -> None:
    with user_errors():
        evaluate_checkpoint(cfg, Path(HydraConfig.get().runtime.output_dir))
