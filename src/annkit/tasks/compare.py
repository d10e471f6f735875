"""``annkit compare <run dirs or a sweep dir> [sort=<metric>] [format=table|csv|markdown|json]``: runs side by side.

One row per run: the config keys that differ between the runs (and only those), then the final validation and
test metrics, the epochs and the wall time, read from each run's metrics.json. A run's config is its
``.hydra/config.yaml`` (a run made from Python has none: then the config its best checkpoint stores, read through
the trust boundary). Nothing else is read, nothing is written. A folder that holds runs (a sweep's
``outputs/train/multiruns/<time>``) stands for every run in it. A run without metrics.json failed, diverged or was
stopped, and is shown as such; one whose validation loss is not finite diverged.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from rich.text import Text

from annkit.checkpoint import peek
from annkit.commands import shown
from annkit.config import flatten, validate
from annkit.errors import AnnkitError, user_errors
from annkit.metrics import metric_mode
from annkit.records import read_data
from annkit.schema import METRICS, TASK_METRICS, Rule, choice

WRITES_RUN_DIR = False  # cli.py: nothing to write
FORMATS = ("table", "csv", "markdown", "json")
SORTABLE = (*METRICS, *(m.replace("val/", "test/") for m in METRICS), "epochs", "wall_s")
SHORT = {"accuracy": "acc", "balanced_accuracy": "bal", "macro_f1": "F1", "exact_match": "exact"}
COMPARE_SCHEMA: dict[str, Any] = {
    "runs": Rule(lambda v: isinstance(v, list) and all(isinstance(p, str) and p for p in v), "a list of folders"),
    "sort": Rule(lambda v: v is None or v in SORTABLE, "null or one of: " + ", ".join(SORTABLE)),
    "format": choice(*FORMATS),
    "keys": Rule(
        lambda v: (
            v is None
            or (isinstance(v, str) and v)
            or (isinstance(v, list) and all(isinstance(k, str) and k for k in v))
        ),
        "null, a config key or pattern, or a list of them, e.g. [model.*, optimizer.lr]",
    ),
}
IGNORED = ("dataset.root", "dataset.search")  # where the files were found is not a setting of the run


def run_dirs(paths: list[str]) -> list[Path]:
    """The runs the paths name: a run dir itself, or every run dir directly inside a folder (a sweep)."""
    if not paths:
        raise AnnkitError("annkit compare needs runs: annkit compare outputs/train/runs/<a> outputs/train/runs/<b>, or "
                          "a sweep's folder: annkit compare outputs/train/multiruns/<time>.")  # fmt: skip
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            raise AnnkitError(f"{text} is not a folder. Give run dirs (outputs/train/runs/<time>) or a sweep's folder "
                              f"(outputs/train/multiruns/<time>).")  # fmt: skip
        if is_run(path):
            found.append(path)
            continue
        inside = sorted((p for p in path.iterdir() if p.is_dir() and is_run(p)),
                        key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))  # fmt: skip
        if not inside:
            raise AnnkitError(f"{text} holds no annkit run (a folder with metrics.json, .hydra/config.yaml or "
                              f"checkpoints/), nor any folder that does.")  # fmt: skip
        found += inside
    return list({p.resolve(): p for p in found}.values())  # a run named twice is one row


def is_run(path: Path) -> bool:
    return (
        (path / "metrics.json").is_file()
        or (path / ".hydra" / "config.yaml").is_file()
        or (path / "checkpoints").is_dir()
    )


def read_run(path: Path) -> dict[str, Any]:
    """A run's metrics.json (None when it wrote none or it cannot be read: ``problem`` says why) and its config,
    flattened (empty when none was saved or it cannot be read)."""
    problem, metrics, config = None, None, {}
    if (path / "metrics.json").is_file():
        try:
            metrics = read_data(path / "metrics.json")
            if not isinstance(metrics, dict) or metrics.get("task") not in TASK_METRICS:
                raise ValueError("it is not an annkit metrics record (no known task)")
        except ValueError as err:
            problem, metrics = f"unreadable metrics.json: {err}", None
    saved = path / ".hydra" / "config.yaml"
    if saved.is_file():
        try:
            config = read_data(saved)
        except ValueError as err:
            problem = problem or f"unreadable .hydra/config.yaml: {err}"
    else:
        for name in ("best", "last"):
            ckpt = path / "checkpoints" / f"{name}.safetensors"
            if ckpt.is_file():
                config = peek(ckpt).meta.get("config", {})
                break
    flat = {k: v for k, v in flatten(config).items() if k not in IGNORED} if isinstance(config, dict) else {}
    return {"dir": path, "metrics": metrics, "config": flat, "problem": problem}


def status(run: dict[str, Any]) -> str:
    metrics = run["metrics"]
    if run["problem"]:  # its metrics.json or config.yaml could not be read: which, and why
        return run["problem"]
    if metrics is None:
        return "no metrics.json: failed, stopped or diverged"
    losses = [split.get("loss") for split in (metrics.get("val"), metrics.get("test")) if isinstance(split, dict)]
    if any(isinstance(v, float) and not math.isfinite(v) for v in losses):
        return "diverged"
    return "ok"


def value_of(metrics: dict[str, Any] | None, key: str) -> float | None:
    """``val/accuracy`` → metrics["val"]["accuracy"]; ``epochs``, ``wall_s`` → metrics[key]."""
    if metrics is None:
        return None
    split, _, name = key.partition("/")
    part = metrics.get(split)
    value = (part.get(name) if isinstance(part, dict) else None) if name else part
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if isinstance(value, int) else float(value)


def comparison(
    runs: list[dict[str, Any]], sort: str | None, shown_keys: list[str] | None = None
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """(the differing config keys — those matching ``shown_keys``' names or patterns when given —, the metric
    columns, one row per run), sorted by ``sort`` (best first)."""
    keys = sorted({k for r in runs for k in r["config"]})
    differing = [k for k in keys if len({json.dumps(r["config"].get(k), sort_keys=True) for r in runs}) > 1]
    if shown_keys is not None:
        differing = [k for k in differing if any(fnmatch.fnmatchcase(k, pattern) for pattern in shown_keys)]
    tasks = [r["metrics"]["task"] for r in runs if r["metrics"]]
    names = list(dict.fromkeys(m for t in tasks for m in TASK_METRICS[t]))
    metric_keys = [f"{split}/{m}" for split in ("val", "test") for m in names]
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run": str(r["dir"]), "status": status(r)}
        row.update({k: r["config"].get(k) for k in differing})
        row.update({k: value_of(r["metrics"], k) for k in [*metric_keys, "epochs", "wall_s"]})
        rows.append(row)
    if sort is not None:
        lower_first = metric_mode(sort.split("/", 1)[-1]) == "min" if "/" in sort else sort == "wall_s"
        missing = [r for r in rows if r.get(sort) is None]
        ranked = sorted((r for r in rows if r.get(sort) is not None), key=lambda r: r[sort], reverse=not lower_first)
        rows = ranked + missing
    return differing, [*metric_keys, "epochs", "wall_s"], rows


def cell(value: Any, key: str, metric: bool = True) -> str:
    """A metric as the training table shows it; a config value as it was given (lr 0.01, not 0.0100)."""
    if value is None:
        return "–"
    if isinstance(value, float) and metric:
        if key == "wall_s":
            return f"{value:.1f} s"
        if key.split("/", 1)[-1] in ("accuracy", "balanced_accuracy", "macro_f1", "exact_match"):
            return f"{value:.2%}"
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 else f"{value:.4g}"  # losses as the training table shows them
    return value if isinstance(value, str) else json.dumps(value)


def header(key: str) -> str:
    split, _, name = key.partition("/")
    return f"{split} {SHORT.get(name, name)}" if name else {"wall_s": "wall", "epochs": "epochs"}.get(key, key)


def render(differing: list[str], metric_keys: list[str], rows: list[dict[str, Any]], fmt: str) -> str | Table:
    """The comparison as a rich table, or as CSV / markdown / JSON text."""
    columns = ["run", *differing, *metric_keys, "status"]
    metrics = set(metric_keys)
    if fmt == "json":
        return json.dumps({"differing_keys": differing, "runs": rows}, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if r[c] is None else r[c] for c in columns] for r in rows])
        return out.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(header(c) for c in columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cell(r[c], c, c in metrics) for c in columns) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    parents = {str(Path(r["run"]).parent) for r in rows}
    common = parents.pop() if len(rows) > 1 and len(parents) == 1 and "." not in parents else None  # a sweep's jobs
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left", title_style="",
                  title=f"runs in {shown(common)}/" if common else None)  # fmt: skip
    for c in columns:
        table.add_column(header(c), justify="right" if c in metric_keys else "left", no_wrap=True)
    for r in rows:
        run = Path(r["run"]).name if common else shown(r["run"])
        table.add_row(*(run if c == "run" else cell(r[c], c, c in metrics) for c in columns))
    return table


def compare(cfg: DictConfig, console: Console | None = None) -> dict[str, Any]:
    """Read the runs, compare them, print the result; returns the differing keys and the rows."""
    resolved = validate(cfg, COMPARE_SCHEMA)
    console = console or Console()
    runs = [read_run(p) for p in run_dirs(resolved["runs"])]
    patterns = [resolved["keys"]] if isinstance(resolved["keys"], str) else resolved["keys"]
    differing, metric_keys, rows = comparison(runs, resolved["sort"], patterns)
    out = render(differing, metric_keys, rows, resolved["format"])
    if isinstance(out, str):
        print(out, end="")
        return {"differing_keys": differing, "runs": rows}
    # rows whole, even wider than the terminal (rich fits a table to the console's width, folding every cell)
    Console(file=console.file, width=10_000, color_system=console.color_system and "auto",
            force_terminal=console.is_terminal, force_jupyter=console.is_jupyter).print(out)  # fmt: skip
    if len(runs) > 1 and not differing and patterns is not None:
        console.print(Text(f"No key that differs between these {len(runs)} runs matches keys=[{','.join(patterns)}]."))
    elif len(runs) > 1 and not differing:
        console.print(Text(f"These {len(runs)} runs have the same config: no key differs (only their results can)."))
    elif len(runs) == 1:
        console.print(Text("One run: nothing to compare it with; its config keys are not shown."))
    return {"differing_keys": differing, "runs": rows}


def run(cfg: DictConfig) -> None:
    HydraConfig.get()  # a Hydra app: --cfg, --help and completion work as for the other tasks
    with user_errors():
        compare(cfg)
