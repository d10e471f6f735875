"""``annkit predict``: a checkpoint's predictions for new inputs — validate → load the checkpoint → read the inputs → predict → write.

``predict_inputs(cfg, run_dir)`` is the only function that reads the config. The checkpoint carries
everything needed to prepare the inputs (its task, class names, input size and preprocessing), so
there is no dataset config: a table checkpoint reads the CSV columns it was trained on (x1, x2 for
the playground, whose features it computes), an image checkpoint reads an image or a folder of
images of its input size (:mod:`annkit.data.inputs`). The forward passes run in batches, in fp32.

Writes ``<run dir>/predictions.csv`` (columns: :func:`annkit.inference.prediction_table`).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from rich.text import Text

from annkit.checkpoint import architecture, atomic_write_bytes, load_model
from annkit.config import BOOL, DEVICE, integer, validate
from annkit.data.inputs import image_files, read_images, read_table
from annkit.errors import AnnkitError, user_errors
from annkit.inference import CHECKPOINT_WHAT, prediction_table, raw_columns, required_path, run_model
from annkit.runtime import resolve_device
from annkit.tracking import facts_panel, shown

log = logging.getLogger("annkit")
SHOWN_ROWS = 20  # up to this many inputs, the terminal shows them all; beyond, the first 10

PREDICT_SCHEMA: dict[str, Any] = {
    "checkpoint": required_path("checkpoint", "predict", CHECKPOINT_WHAT),
    "input": required_path(
        "input",
        "predict",
        "a .csv file (for a checkpoint trained on a table: the columns it was trained on), an image file (png, jpg, …) "
        "of the checkpoint's input size, or a folder of such images, e.g. input=shirt.png or input=photos/",
    ),
    "device": DEVICE,
    "batch_size": integer(1),
    "overwrite": BOOL,
}
OVERWRITE_KEY = "overwrite"  # for the cli: a run dir that holds a run is moved aside only with overwrite=true


def read_inputs(path: Path, meta: dict[str, Any]) -> tuple[list[str], np.ndarray, list[str], str]:
    """(one label per input, the raw inputs as the model's data takes them, notes, a description):
    uint8 N×H×W images, or N×C rows of the raw columns (:func:`annkit.inference.raw_columns`), as
    :func:`annkit.inference.run_model` takes them."""
    md = meta["data"]
    if md["preprocessing"]["kind"] == "image":
        shape = "×".join(map(str, md["input_shape"]))
        if path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
            raise AnnkitError(
                f"input={path} is a table, but this checkpoint was trained on {shape} images ({md['name']}): give an "
                f"image file (png, jpg, …) or a folder of images."
            )
        files, notes = image_files(path)
        pixels, converted = read_images(files, md["input_shape"])
        where = f"{len(files):,} image{'s' if len(files) > 1 else ''}" + (
            f" from the folder {path}" if path.is_dir() else f" ({path})"
        )
        return [f.name for f in files], pixels, notes + converted, f"{where} · {shape} grey"
    columns = raw_columns(meta)
    delimiter = meta["config"]["dataset"].get("delimiter", ",")  # a CSV run's own delimiter; the others have none
    delimiter = "\t" if delimiter in ("tab", "\\t") else delimiter
    x = read_table(path, columns, delimiter)
    derived = md["name"] == "playground" and list(md["preprocessing"]["features"]) != columns
    how = (f"features {', '.join(md['preprocessing']['features'])} computed from them" if derived else "") + (
        (", " if derived else "") + "standardised with the checkpoint's μ, σ"
        if md["preprocessing"]["standardize"]
        else ""
    )
    return (
        [str(i) for i in range(1, len(x) + 1)],
        x,
        [],
        f"{len(x):,} row{'s' if len(x) > 1 else ''} of {path} · columns {', '.join(columns)}"
        + (f" ({how})" if how else ""),
    )


def predict_inputs(cfg: DictConfig, run_dir: Path, console: Console | None = None) -> Path:
    """Predict ``cfg.input`` with ``cfg.checkpoint``; write and show ``run_dir/predictions.csv``."""
    started = time.perf_counter()
    resolved = validate(cfg, PREDICT_SCHEMA)  # every key checked before any file is read
    console = console or Console()
    device = resolve_device(resolved["device"], key="device")
    model, ckpt = load_model(resolved["checkpoint"], device)
    meta = ckpt.meta
    labels, raw, notes, described = read_inputs(Path(resolved["input"]), meta)
    head, activated, predicted = run_model(model, meta, raw, device=device, batch_size=resolved["batch_size"])
    header, rows = prediction_table(head, labels, activated, predicted)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    out = run_dir / "predictions.csv"
    atomic_write_bytes(out, text.getvalue().encode())
    facts = [
        ("checkpoint", shown(ckpt.path)),
        ("model", f"epoch {meta.get('epoch')} · {architecture(meta)}"),
        ("input", described),
        *(("", note) for note in notes),
        ("device", f"{device} · fp32"),
        (
            "written",
            f"{shown(out)} · {len(rows):,} row{'s' if len(rows) > 1 else ''}: {', '.join(header[:4])}"
            f"{f' and {len(header) - 4} more' if len(header) > 4 else ''} · {time.perf_counter() - started:.1f} s",
        ),
    ]
    show(console, facts, head.task, header, rows, out)
    return out


def show(
    console: Console, facts: list[tuple[str, str]], task: str, header: list[str], rows: list[list[str]], out: Path
) -> None:
    """The facts, then the predictions: all of them up to 20 inputs, else the first 10 and the path."""
    if task == "classification":
        keep = [0, 1, 2]  # input, predicted, confidence
    elif task == "multilabel":
        keep = list(range(min(len(header), 1 + (len(header) - 1) // 2)))  # input and the 0/1 per label
    else:
        keep = list(range(min(len(header), 9)))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for j in keep:
        table.add_column(header[j], justify="left" if j == 0 or header[j] == "predicted" else "right")
    shown_rows = rows if len(rows) <= SHOWN_ROWS else rows[:10]
    for row in shown_rows:
        cells = [row[j] for j in keep]
        if task == "classification":
            cells[2] = f"{float(cells[2]):.1%}"  # the confidence, readable; the file keeps every digit
        table.add_row(*cells)
    parts: list[Any] = [Text(""), table]
    if len(shown_rows) < len(rows):
        parts.append(Text(f"… the first 10 of {len(rows):,} predictions; all of them are in the file below"))
    facts_panel(console, "annkit predict", facts, parts)


def run(cfg: DictConfig) -> None:
    with user_errors():
        predict_inputs(cfg, Path(HydraConfig.get().runtime.output_dir))
