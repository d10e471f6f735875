"""``annkit show <run dir | checkpoint>``: the pictures of a trained network as PNG files — validate → load the
checkpoint → its views → render → write.

:func:`show_pictures` is the only function that reads the config. Everything comes from the checkpoint, through
its trust boundary: the weights, the head, the preprocessing and, for 2-D data, the plane the run drew its pictures
over (the playground's [-6, 6]² for checkpoints that predate the record). No data is read, nothing is trained,
nothing is downloaded.
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
from rich.text import Text

from annkit.checkpoint import architecture, load_model, resolve_checkpoint
from annkit.config import BOOL, DEVICE, integer, validate
from annkit.data import Plane
from annkit.errors import AnnkitError, user_errors
from annkit.inference import head_from_meta, preparer, raw_columns, table_inputs
from annkit.inside import Views, render, write_pictures
from annkit.runtime import resolve_device
from annkit.tracking import facts_panel, shown

SHOW_SCHEMA: dict[str, Any] = {
    "path": None,  # check_path, below (set after its definition)
    "max_units": integer(1, 64),
    "unit_resolution": integer(8, 400),
    "first_layer": integer(0, 1024),
    "device": DEVICE,
    "overwrite": BOOL,
}
OVERWRITE_KEY = "overwrite"  # for the cli: a run dir that holds a run is moved aside only with overwrite=true
PLAYGROUND_PLANE = {"extent": [-6.0, 6.0, -6.0, 6.0], "axes": ["x1", "x2"]}


def check_path(value: Any) -> None:
    if value is None:
        raise AnnkitError(
            "annkit show needs a run dir or a checkpoint: annkit show outputs/train/runs/<time> (or path=<…>)."
        )
    if not isinstance(value, str) or not value:
        raise AnnkitError(f"path={value!r} is not a path: give a run dir or a .safetensors checkpoint.")


check_path.expected = "required: a run dir or a .safetensors checkpoint"  # type: ignore[attr-defined]
SHOW_SCHEMA["path"] = check_path


def checkpoint_plane(meta: dict[str, Any]) -> Plane | None:
    """The plane of a 2-D checkpoint's pictures: the one its run recorded, or the playground's; None for others."""
    data = meta["data"]
    if data["preprocessing"]["kind"] != "table" or len(raw_columns(meta)) != 2:
        return None
    record = data.get("plane") or (PLAYGROUND_PLANE if data["name"] == "playground" else None)
    if record is None:
        return None
    return Plane(lambda grid: table_inputs(np.asarray(grid, dtype=np.float64), meta), {},
                 tuple(record["extent"]), tuple(record["axes"]))  # type: ignore[arg-type]  # fmt: skip


def checkpoint_views(meta: dict[str, Any], device: torch.device, *, max_units: int = 16, resolution: int = 80,
                     first_layer: int = 64) -> Views:  # fmt: skip
    """What :func:`annkit.inside.render` needs, from a checkpoint's (trusted) metadata alone."""
    data = meta["data"]
    shape = data["input_shape"]
    image = data["preprocessing"]["kind"] == "image"
    features = (
        [f"px {r},{c}" for r in range(shape[-2]) for c in range(shape[-1])]
        if image
        else [str(f) for f in data["preprocessing"]["features"]]
    )
    return Views(
        head_from_meta(meta, device), preparer(meta), features, checkpoint_plane(meta),
        image_shape=(shape[-2], shape[-1]) if image and len(shape) >= 2 else None, max_units=max_units,
        resolution=resolution, first_layer=first_layer,
    )  # fmt: skip


def show_pictures(cfg: DictConfig, out: Path, console: Console | None = None) -> list[Path]:
    """Render the pictures of ``cfg.path`` into ``out``; list them. Returns the files written."""
    started = time.perf_counter()
    resolved = validate(cfg, SHOW_SCHEMA)  # every key checked before any file is read
    console = console or Console()
    device = resolve_device(resolved["device"], key="device")
    model, ckpt = load_model(resolve_checkpoint(Path(resolved["path"])), device)
    views = checkpoint_views(ckpt.meta, device, max_units=resolved["max_units"],
                             resolution=resolved["unit_resolution"], first_layer=resolved["first_layer"])  # fmt: skip
    epoch = ckpt.meta.get("epoch")
    written = write_pictures(render(model, views, f"epoch {epoch}", boundary=True), out)
    facts = [
        ("checkpoint", shown(ckpt.path)),
        ("model", f"epoch {epoch} · {architecture(ckpt.meta)}"),
        *(
            [("", "no plane recorded: no unit maps (2-D data only)")]
            if views.plane is None and _two_d(ckpt.meta)
            else []
        ),
        (
            "written",
            f"{shown(out)} · {len(written)} picture{'s' * (len(written) != 1)} · {time.perf_counter() - started:.1f} s",
        ),
    ]
    facts_panel(console, "annkit show", facts, [Text(""), *(Text(shown(p)) for p in written)])
    return written


def _two_d(meta: dict[str, Any]) -> bool:
    return meta["data"]["preprocessing"]["kind"] == "table" and len(raw_columns(meta)) == 2


def run(cfg: DictConfig) -> None:
    with user_errors():
        show_pictures(cfg, Path(HydraConfig.get().runtime.output_dir))
