"""A sweep (``annkit train -m …``) from end to end: what each job returns to the sweeper, and the table of
its jobs, ranked, printed when the sweep ends (and kept as ``<sweep dir>/sweep_summary.json``).

:class:`SweepSummary` is a Hydra callback (``hydra.callbacks.sweep_summary`` in configs/train.yaml). It reads
each job's ``.hydra/overrides.yaml`` and ``metrics.json``, nothing else. Imports nothing heavy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from rich.text import Text

from annkit.commands import command, override
from annkit.records import read_data, write_record


def objective(metrics: dict[str, Any]) -> float:
    """What a sweeper maximises: the validation accuracy of the kept (best) epoch, R² for
    regression — higher is better for every task, so ``direction: maximize`` always fits."""
    return float(metrics["val"]["r2" if metrics["task"] == "regression" else "accuracy"])


def readable(path: Path, kind: type) -> Any:
    """The JSON or YAML file at ``path`` when it holds a ``kind``; else (missing, unreadable) None."""
    try:
        tree = read_data(path) if path.is_file() else None
    except ValueError:
        return None
    return tree if isinstance(tree, kind) else None


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Each job folder of a sweep: its number, overrides and metrics.json (None for a job that wrote none)."""
    jobs = []
    for folder in sorted(
        (p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()),
        key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name),
    ):
        overrides = readable(folder / ".hydra" / "overrides.yaml", list) or []
        metrics = readable(folder / "metrics.json", dict)
        jobs.append({"job": folder.name, "dir": str(folder), "overrides": overrides, "metrics": metrics})
    return jobs


def summarize(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The jobs ranked by :func:`objective` (jobs without metrics last), with the keys the sweep varied."""
    values: dict[str, dict[str, str]] = {}
    for job in jobs:
        values[job["job"]] = dict(str(o).split("=", 1) for o in job["overrides"] if "=" in str(o))
    keys = sorted({k for v in values.values() for k in v})
    swept = [k for k in keys if len({v.get(k) for v in values.values()}) > 1]
    rows = []
    for job in jobs:
        m = job["metrics"]
        value = objective(m) if m is not None else None
        rows.append(
            {
                "job": job["job"],
                "dir": job["dir"],
                **{k: values[job["job"]].get(k) for k in swept},
                "objective": value if value is None or math.isfinite(value) else None,
                "task": m["task"] if m else None,
                "test": (m["test"].get("r2" if m["task"] == "regression" else "accuracy") if m else None),
                "epochs": m["epochs"] if m else None,
                "wall_s": m["wall_s"] if m else None,
                "status": "finished" if m else "failed or diverged (no metrics.json)",
            }
        )
    rows.sort(key=lambda r: (r["objective"] is None, -(r["objective"] or 0.0)))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["objective"] is not None else None
    return {"swept": swept, "jobs": rows}


def short(value: str | None) -> str:
    """An override's value for the table: numbers to 3 significant digits (Optuna's lr=0.0038473523…)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return str(value) if str(value).lstrip("-").isdigit() else f"{number:.3g}"


def show(summary: dict[str, Any], sweep_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    rows, swept = summary["jobs"], summary["swept"]
    regression = any(r["task"] == "regression" for r in rows)
    name = "R²" if regression else "accuracy"
    table = Table(
        title=f"sweep: {len(rows)} jobs, ranked by val {name} (the sweep's objective; test {name} beside it)",
        title_justify="left",
        header_style="bold",
        box=None,
        pad_edge=False,
    )
    leaves = [k.rsplit(".", 1)[-1] for k in swept]
    headers = [leaf if leaves.count(leaf) == 1 else key for leaf, key in zip(leaves, swept)]  # lr, width, …
    for column in ("#", "job", *headers, "val", "test", "epochs", "wall"):
        table.add_column(column, justify="left" if column in ("job", *headers) else "right")
    fmt = "{:.4f}" if regression else "{:.2%}"
    for r in rows:
        cells = [str(r["rank"] or "–"), r["job"], *(short(r[k]) for k in swept)]
        if r["objective"] is None:
            cells += [r["status"], "", "", ""]
        else:
            cells += [fmt.format(r["objective"]), fmt.format(r["test"]), str(r["epochs"]), f"{r['wall_s']:.1f} s"]
        table.add_row(*cells)
    console = Console()
    console.print(table)
    best = next((r for r in rows if r["rank"] == 1), None)
    if best is not None:
        lines = (
            ("best", f"job {best['job']} · val {fmt.format(best['objective'])}"),
            ("run dir", best["dir"]),
            ("tensorboard", command("board", override("logdir", str(sweep_dir)))),
        )
        for label, text in lines:  # each path and command whole on a line of its own (80 columns)
            console.print(Text(f"{label:<11}  ", style="bold cyan") + Text(text), soft_wrap=True)


class SweepSummary(Callback):
    """At a sweep's end, the table of its jobs (see the module docstring); at its start, Optuna quiet."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        if "optuna" in str(config.hydra.sweeper.get("_target_", "")):
            import optuna  # it sets its logger's level when first used: its per-trial INFO lines, in colour

            optuna.logging.set_verbosity(optuna.logging.WARNING)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if config.hydra.job.name != "train" or not sweep_dir.is_dir():
            return  # lr-find sweeps write lr_find.json, not metrics.json
        summary = summarize(read_jobs(sweep_dir))
        if not summary["jobs"]:
            return
        write_record(sweep_dir / "sweep_summary.json", summary)
        show(summary, sweep_dir)
