"""annkit from Python (issue 17, first part): compose a config and train, in this process, through the same recipe
the CLI runs (:func:`annkit.tasks.train.train`).

    import annkit
    run = annkit.train("dataset=xor", "model=logistic", "trainer.epochs=50")
    run.metrics["test"]["accuracy"], run.run_dir, run.checkpoint

The overrides are the CLI's words, checked by the CLI's own checks (Hydra's grammar, group options) before
Hydra composes them; every refusal is an :class:`annkit.AnnkitError` with the CLI's one-paragraph message. Runs go
to ``outputs/train/runs/<time>/`` under the current folder, as from the CLI, or to ``run_dir``. torch's thread count
and the signal handlers are as before after each call. Sweeps (``-m``) stay a CLI feature.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig
from rich.console import Console

from annkit.commands import command, override
from annkit.errors import AnnkitError
from annkit.overrides import check_groups, read

CONFIGS = {"train": "train", "lr-find": "lr_find", "eval": "eval", "predict": "predict"}


def compose(*overrides: str, task: str = "train", config_dir: str | Path | None = None) -> DictConfig:
    """The config ``annkit <task> <overrides>`` would run with (Hydra's compose API: no sys.argv, no chdir).
    ``config_dir``: a folder of your own config files, as the CLI's ``--config-dir``. Raises AnnkitError."""
    if task not in CONFIGS:
        raise AnnkitError(f'"{task}" is not an annkit task. Valid tasks: {", ".join(CONFIGS)}.')
    words = list(overrides)
    check_groups(task, read(task, words))  # the CLI's checks, the CLI's messages
    try:
        if config_dir is None:
            with initialize_config_module(config_module="annkit.configs", version_base=None):
                return hydra_compose(config_name=CONFIGS[task], overrides=words)
        with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
            return hydra_compose(config_name=CONFIGS[task], overrides=words)
    except HydraException as err:
        raise AnnkitError(
            f"annkit {task} cannot compose this config: {str(err).strip().splitlines()[0]} `annkit {task} --help` lists "
            f"every key and its default."
        ) from None


@dataclass
class Run:
    """A finished training run: its metrics.json as a dict, and where its files are."""

    metrics: dict[str, Any]
    run_dir: Path
    _model: Any = field(default=None, repr=False)

    @property
    def history(self) -> list[dict[str, float]]:
        """One row per epoch: train/val metrics, lr, seconds (metrics.json's ``history``)."""
        return self.metrics["history"]

    @property
    def checkpoint(self) -> Path:
        """The best epoch's weights (for eval, predict and fine-tuning)."""
        return self.run_dir / "checkpoints" / "best.safetensors"

    @property
    def model(self) -> torch.nn.Module:
        """The trained network with the best epoch's weights, in eval mode, on the CPU."""
        if self._model is None:
            from annkit.checkpoint import load_model

            self._model = load_model(self.checkpoint)[0]
        return self._model

    def board(self) -> str:
        """The command that shows this run in TensorBoard."""
        return command("board", override("logdir", str(self.run_dir)))


def default_run_dir(task: str = "train") -> Path:
    """outputs/<task>/runs/<time>/ under the current folder, as the CLI names it."""
    return Path("outputs") / task / "runs" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def train(*overrides: str, cfg: DictConfig | None = None, run_dir: str | Path | None = None,
          config_dir: str | Path | None = None, progress: bool = True) -> Run:  # fmt: skip
    """``annkit train <overrides>`` in this process; returns the :class:`Run`. ``cfg``: an already composed config
    (then ``overrides`` are only recorded, for resume). ``progress=False``: print nothing."""
    from annkit.runtime import restored_process_state
    from annkit.tasks.train import train as train_task

    cfg = cfg if cfg is not None else compose(*overrides, config_dir=config_dir)
    where = Path(run_dir) if run_dir is not None else default_run_dir()
    console = Console() if progress else Console(file=io.StringIO())
    with restored_process_state():
        metrics = train_task(cfg, where, console=console, overrides=list(overrides))
    return Run(metrics, where.resolve())
