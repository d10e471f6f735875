"""``annkit lr-find``: the LR range test on exactly what ``annkit train`` would build.

validate → refuse what it cannot do → build (:mod:`annkit.tasks.build`, the objects ``train`` trains) → header →
search and report (:func:`annkit.tasks.learning_rate.find`, which ``annkit train optimizer.lr=auto`` calls too).
The sweep takes annkit's own training step (:class:`annkit.loop.Step`: weights, penalties, clipping, autocast);
the search is :mod:`annkit.lr_search`, the rules that read the curve :mod:`annkit.lr_finder`, and the outputs
(lr_find.json, lr_find.csv, lr_find.png, TensorBoard events, the table, the ``annkit train`` line to copy)
:mod:`annkit.lr_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from annkit.commands import command, override
from annkit.config import validate
from annkit.distributed import world_from_env
from annkit.errors import AnnkitError, user_errors
from annkit.lr_search import Found
from annkit.models import count_params, summarize
from annkit.tasks.build import Built, build, search_settings
from annkit.tasks.header import facts
from annkit.tasks.learning_rate import find
from annkit.tracking import ConsoleReporter, TensorBoardLogger


def lr_find(
    cfg: DictConfig, run_dir: Path, console: Console | None = None, overrides: list[str] | None = None
) -> Found:
    """The ``annkit lr-find`` task: build as ``train`` would, sweep, report; the model is left as built."""
    resolved = validate(cfg)
    refuse(resolved)
    console = console or Console()
    built = build(resolved)
    params, _ = count_params(built.network.model)
    ConsoleReporter(console, "annkit lr-find").header(
        finder_facts(resolved, built, run_dir), summarize(built.network.model, built.problem.data.input_shape), params
    )
    tensorboard = TensorBoardLogger(run_dir / "tb")
    tensorboard.config(OmegaConf.to_yaml(cfg, resolve=True))
    try:
        return find(resolved, built, console, run_dir, tensorboard, overrides=overrides or [])
    finally:
        tensorboard.close()


def refuse(cfg: dict[str, Any]) -> None:
    """What lr-find cannot do: run under torchrun, or resume."""
    if world_from_env() is not None:
        raise AnnkitError(
            "annkit lr-find runs in one process: under torchrun every process would sweep on its own. Run "
            "`annkit lr-find` with the same overrides without torchrun, then train under torchrun with its "
            "suggestion as optimizer.lr=<value>."
        )
    if cfg["resume"] is not None:
        raise AnnkitError(
            f"resume={cfg['resume']} goes on with a training run; annkit lr-find starts no run to resume. "
            f"Use `{command('train', override('resume', cfg['resume']))}`, or drop resume= from the lr-find command."
        )


def finder_facts(cfg: dict[str, Any], built: Built, run_dir: Path) -> list[tuple[str, str]]:
    """The training header, with the finder's ladder where the schedule would be."""
    s, seed = search_settings(cfg)
    finder = f"{s.steps} rungs {s.start_lr:g} → {s.end_lr:g} ({s.mode}) × {s.repeats} sweep(s), seed {seed}"
    if s.holdout_batches:
        finder += f", holdout {s.holdout_batches} batch(es) every {s.holdout_every}"
    optim = f"{type(built.network.optimizer).__name__} (lr swept; other settings as configured)"
    lines = facts(cfg, built, run_dir, optim=optim, schedule=finder)
    return [("finder" if label == "schedule" else label, text) for label, text in lines]


def run(cfg: DictConfig) -> None:
    with user_errors():
        lr_find(cfg, Path(HydraConfig.get().runtime.output_dir), overrides=list(HydraConfig.get().overrides.task))
