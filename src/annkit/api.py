"""annkit from Python: compose a config, train, find the lr, evaluate, load a checkpoint and predict — in this
process, through the functions the CLI's tasks run (one code path).

    import annkit
    run = annkit.train("dataset=xor", "model=logistic", "trainer.epochs=50")
    run.metrics["test"]["accuracy"], run.plot(), run.predict([[0, 1], [1, 1]]).classes
    finder = annkit.lr_find("dataset=xor", "model=mlp")          # finder.suggestion, finder.band, finder.plot()
    model = annkit.load(run.checkpoint)                          # model.predict(x), model.evaluate("split=val")

The overrides are the CLI's words, checked by the CLI's own checks (Hydra's grammar, group options, the task's
rewrites such as ``resume=``) before Hydra's compose API composes them (no ``sys.argv``, no chdir); every refusal
is an :class:`annkit.AnnkitError` with the CLI's one-paragraph message (in Jupyter, shown without a traceback).
Runs go to ``outputs/<task>/runs/<time>/`` under the current folder, as from the CLI, or to ``run_dir``. After each
call the random streams, torch's threads and flags, the signal handlers and the logging handlers are as before
(:func:`annkit.runtime.restored_process_state`). Ctrl-C (a kernel interrupt) stops training after the current step,
saves ``checkpoints/last.safetensors`` and raises :class:`annkit.errors.Interrupted` (a KeyboardInterrupt) that says
how to go on. Sweeps (``-m``, Optuna) stay a CLI feature.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
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

from annkit.checkpoint import load_model
from annkit.commands import command, override
from annkit.data import Data
from annkit.errors import AnnkitError, Interrupted
from annkit.figures import Picture, history_figure
from annkit.head import Head
from annkit.inference import class_scores, prediction_table, raw_columns, raw_inputs, run_model
from annkit.lr_search import Found
from annkit.overrides import check_groups, check_keys, key_of, read
from annkit.rundir import protect
from annkit.runtime import resolve_device, restored_process_state

CONFIGS = {"train": "train", "lr-find": "lr_find", "eval": "eval", "predict": "predict", "show": "show"}
MODULES = {"train": "annkit.tasks.train", "lr-find": "annkit.tasks.lr_find", "eval": "annkit.tasks.evaluate",
           "predict": "annkit.tasks.predict", "show": "annkit.tasks.show"}  # fmt: skip
Overrides = Sequence[str]


def prepared(task: str, overrides: Overrides, config_dir: str | Path | None = None) -> tuple[list[str], Path | None]:
    """(the overrides Hydra composes, the run dir they name): the CLI's checks before Hydra — grammar, group options
    — then the task's own rewrite (train's ``resume=`` puts the run's overrides first and names its run dir; eval's
    ``dataset.<key>=`` becomes ``+dataset.<key>=``), then the keys. Hydra's own keys (``hydra.*``) are not part of a config."""
    if task not in CONFIGS:
        raise AnnkitError(f'"{task}" is not an annkit task. Valid tasks: {", ".join(CONFIGS)}.')
    words = [str(o) for o in overrides]
    check_groups(task, read(task, words))  # the CLI's checks, the CLI's messages
    words = getattr(importlib.import_module(MODULES[task]), "prepare_argv", lambda a: a)(words)
    line = read(task, words)
    line.config_dirs = [Path(config_dir)] if config_dir is not None else []
    check_keys(task, line)
    named = line.value("hydra.run.dir")
    return [w for w in words if not key_of(w).startswith("hydra.")], Path(named) if named else None


def compose(*overrides: str, task: str = "train", config_dir: str | Path | None = None) -> DictConfig:
    """The config ``annkit <task> <overrides>`` would run with (Hydra's compose API: no sys.argv, no chdir).
    ``config_dir``: a folder of your own config files, as the CLI's ``--config-dir``. Raises AnnkitError."""
    return composed(task, prepared(task, overrides, config_dir)[0], config_dir)


def composed(task: str, words: list[str], config_dir: str | Path | None) -> DictConfig:
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


def default_run_dir(task: str = "train") -> Path:
    """outputs/<task>/runs/<time>/ under the current folder, as the CLI names it."""
    return Path("outputs") / CONFIGS[task] / "runs" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def console_for(progress: bool) -> Console:
    """The terminal, or a notebook cell (rich renders there by itself); ``progress=False``: nothing is printed."""
    return Console() if progress else Console(file=io.StringIO(), force_jupyter=False)


def setup(task: str, overrides: Overrides, cfg: DictConfig | None, run_dir: str | Path | None,
          config_dir: str | Path | None) -> tuple[DictConfig, list[str], Path]:  # fmt: skip
    """(config, the overrides to record, the run dir) of one call, as the CLI would have them."""
    words, named = prepared(task, overrides, config_dir)
    cfg = cfg if cfg is not None else composed(task, words, config_dir)
    where = Path(run_dir) if run_dir is not None else named or default_run_dir(task)
    return cfg, words, where


# ── train ────────────────────────────────────────────────────────────────────────────────────────────────────────


@dataclass
class Run:
    """A finished training run: its metrics.json as a dict, and where its files are."""

    metrics: dict[str, Any]
    run_dir: Path
    _loaded: Model | None = field(default=None, repr=False)

    @property
    def history(self) -> list[dict[str, float]]:
        """One row per epoch: train/val metrics, lr, seconds (metrics.json's ``history``)."""
        return self.metrics["history"]

    @property
    def checkpoint(self) -> Path:
        """The best epoch's weights (for eval, predict and fine-tuning)."""
        return self.run_dir / "checkpoints" / "best.safetensors"

    @property
    def loaded(self) -> Model:
        """The best checkpoint, loaded once (:func:`load`)."""
        if self._loaded is None:
            self._loaded = load(self.checkpoint)
        return self._loaded

    @property
    def model(self) -> torch.nn.Module:
        """The trained network with the best epoch's weights, in eval mode, on the CPU."""
        return self.loaded.module

    def predict(self, x: Any, batch_size: int = 1024) -> Prediction:
        """:meth:`Model.predict` with the best checkpoint: ``x`` in the dataset's own units."""
        return self.loaded.predict(x, batch_size=batch_size)

    def plot(self) -> Picture:
        """The loss and the validation metric by epoch, the best epoch marked (a matplotlib Figure)."""
        best = self.metrics.get("best_metric")
        title = f"{self.run_dir.name} · best {best} at epoch {self.metrics.get('best_epoch')}" if best else ""
        return history_figure(self.history, best, self.metrics.get("best_epoch"), title)

    def pictures(self, **settings: Any) -> dict[str, Picture]:
        """:meth:`Model.pictures` of the best checkpoint (the PNGs of ``pictures/`` in the run dir, as Figures)."""
        return self.loaded.pictures(**settings)

    def board(self) -> str:
        """The command that shows this run in TensorBoard."""
        return command("board", override("logdir", str(self.run_dir)))


def train(*overrides: str, cfg: DictConfig | None = None, run_dir: str | Path | None = None,
          config_dir: str | Path | None = None, progress: bool = True) -> Run:  # fmt: skip
    """``annkit train <overrides>`` in this process; returns the :class:`Run`. ``cfg``: an already composed config
    (then ``overrides`` are only recorded, for resume). ``resume=<run dir>`` goes on with a stopped run, in its own
    folder. ``progress=False``: print nothing."""
    from annkit.tasks.train import train as train_task

    cfg, words, where = setup("train", overrides, cfg, run_dir, config_dir)
    try:
        with restored_process_state():
            metrics = train_task(cfg, where, console=console_for(progress), overrides=words)
    except Interrupted as err:
        resume = str(where)
        raise Interrupted(f"{err} annkit.train({'resume=' + resume!r}) (in a shell: {err.command})",
                          err.exit_code) from None  # fmt: skip
    return Run(metrics, where.resolve())


# ── lr-find ──────────────────────────────────────────────────────────────────────────────────────────────────────


@dataclass
class LRFind:
    """The LR range test's result: the suggestion, the band, the record (lr_find.json) and the picture."""

    found: Found = field(repr=False)
    run_dir: Path
    overrides: list[str]

    @property
    def suggestion(self) -> float | None:
        """The suggested learning rate (None when the curves allow none; ``record["diagnostics"]`` says why)."""
        return self.found.suggestion

    @property
    def band(self) -> tuple[float, float] | None:
        """(onset, edge): from where the loss starts falling to where it stops; lrs inside it train."""
        return self.found.band

    @property
    def record(self) -> dict[str, Any]:
        """lr_find.json as a dict: the rules, the sweeps, the diagnostics, the train command."""
        import json

        return json.loads((self.run_dir / "lr_find.json").read_text())

    @property
    def train_overrides(self) -> list[str]:
        """The overrides that train what was swept at the suggestion: ``annkit.train(*finder.train_overrides)``."""
        if self.suggestion is None:
            raise AnnkitError(f"The LR range test in {self.run_dir} found no learning rate to suggest "
                              f"({'; '.join(self.found.problems().values()) or 'see lr_find.png'}). Give one yourself: "
                              f"optimizer.lr=<value>.")  # fmt: skip
        kept = [o for o in self.overrides if not key_of(o).startswith(("lr_find.", "optimizer.lr"))]
        return [*kept, f"optimizer.lr={self.suggestion:.3g}"]

    def plot(self) -> Picture:
        """Loss against lr: the raw and smoothed sweeps, the band, the suggestion (a matplotlib Figure)."""
        from annkit.lr_report import plot

        return plot(self.found)


def lr_find(*overrides: str, cfg: DictConfig | None = None, run_dir: str | Path | None = None,
            config_dir: str | Path | None = None, progress: bool = True) -> LRFind:  # fmt: skip
    """``annkit lr-find <overrides>`` in this process: the same sweep, files and report; returns :class:`LRFind`."""
    from annkit.tasks.lr_find import lr_find as lr_find_task

    cfg, words, where = setup("lr-find", overrides, cfg, run_dir, config_dir)
    overwrite = bool(cfg.trainer.get("overwrite"))
    protect(where, task="lr_find", sweep=False, overwrite=overwrite, overwrite_key="trainer.overwrite")
    with restored_process_state():
        found = lr_find_task(cfg, where, console=console_for(progress), overrides=words)
    return LRFind(found, where.resolve(), words)


# ── a checkpoint: load, predict, evaluate ─────────────────────────────────────────────────────────────────────────


@dataclass
class Prediction:
    """What a checkpoint's model says about N inputs.

    ``output``: ŷ, N×outputs — probabilities (softmax, sigmoid) or values (regression); ``predicted``: N class
    indices, N×K 0/1 labels (multi-label), or N×T values; ``names``: the classes, labels or targets."""

    task: str
    names: list[str]
    output: torch.Tensor
    predicted: torch.Tensor
    head: Head = field(repr=False)

    @property
    def classes(self) -> list[str] | list[list[str]]:
        """The predicted class name of each input (classification), or the list of its labels (multi-label)."""
        if self.task == "classification":
            return [self.names[i] for i in self.predicted.tolist()]
        if self.task == "multilabel":
            return [[n for n, on in zip(self.names, row) if on] for row in self.predicted.tolist()]
        raise AnnkitError(f"A regression model predicts values, not classes: read .predicted (N×{len(self.names)}).")

    @property
    def probabilities(self) -> torch.Tensor:
        """N×K class probabilities (classification; one sigmoid output p becomes [1 − p, p]), else ``output``."""
        return class_scores(self.head, self.output)[0] if self.task == "classification" else self.output

    def table(self, labels: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
        """The header and rows ``annkit predict`` writes to predictions.csv (``labels``: the input column)."""
        labels = list(labels) if labels is not None else [str(i) for i in range(1, len(self.predicted) + 1)]
        return prediction_table(self.head, labels, self.output, self.predicted)


@dataclass
class Model:
    """A trained checkpoint: the network, its head and the preprocessing of its run (``annkit.load``)."""

    checkpoint: Path
    module: torch.nn.Module = field(repr=False)
    meta: dict[str, Any] = field(repr=False)
    device: torch.device

    @property
    def task(self) -> str:
        return self.meta["data"]["task"]

    @property
    def names(self) -> list[str]:
        """Its classes, labels or targets, in output order."""
        return list(self.meta["data"]["classes"])

    @property
    def inputs(self) -> str:
        """What :meth:`predict` takes: the image shape, or the raw columns in order."""
        md = self.meta["data"]
        if md["preprocessing"]["kind"] == "image":
            return f"uint8 images {'×'.join(map(str, md['input_shape']))} (pixels 0…255)"
        return f"rows of [{', '.join(raw_columns(self.meta))}]"

    def predict(self, x: Any, batch_size: int = 1024) -> Prediction:
        """The model's answer for ``x`` in the dataset's own units — raw pixels (uint8, N×H×W or one H×W image) or raw
        rows of :attr:`inputs` (N×C, or one row) as an array, tensor or list; or a path, read as ``annkit predict``
        reads ``input=`` (a CSV file, an image, a folder of images). The checkpoint's preprocessing is applied here,
        as in ``annkit predict``, whose predictions.csv holds the same numbers."""
        if isinstance(x, (str, Path)):
            from annkit.tasks.predict import read_inputs

            raw = read_inputs(Path(x), self.meta)[1]
        else:
            raw = raw_inputs(x, self.meta)
        if len(raw) == 0:
            raise AnnkitError("No inputs: give at least one image or row to predict.")
        head, output, predicted = run_model(self.module, self.meta, raw, device=self.device, batch_size=batch_size)
        return Prediction(self.task, self.names, output, predicted, head)

    def evaluate(self, *overrides: str, run_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
        """:func:`evaluate` on this checkpoint: ``split=val``, ``dataset=<name>``, ``dataset.<key>=…`` as in the CLI."""
        return evaluate(self.checkpoint, *overrides, run_dir=run_dir, progress=progress)

    def pictures(self, *, max_units: int = 16, resolution: int = 80, first_layer: int = 64) -> dict[str, Picture]:
        """What ``annkit show`` draws, as Figures by name (a notebook shows each inline): every layer's unit maps
        (``units/input``, ``units/layer<i>``, ``units/output``) and the ``boundary`` for 2-D data, the ``diagram``,
        and ``first_layer`` (the first layer's weight rows) for images."""
        from annkit.inside import render
        from annkit.tasks.show import checkpoint_views

        views = checkpoint_views(self.meta, self.device, max_units=max_units, resolution=resolution,
                                 first_layer=first_layer)  # fmt: skip
        return render(self.module, views, f"epoch {self.meta.get('epoch')}", boundary=True)


def load(checkpoint: str | Path | Run, device: str = "cpu") -> Model:
    """A checkpoint written by annkit (safetensors; its metadata trust-checked, never executed) as a :class:`Model`.
    ``checkpoint``: the .safetensors file, a run dir (its best checkpoint) or a :class:`Run`."""
    path = checkpoint.checkpoint if isinstance(checkpoint, Run) else Path(checkpoint)
    if path.is_dir() and (path / "checkpoints" / "best.safetensors").is_file():
        path = path / "checkpoints" / "best.safetensors"
    where = resolve_device(device, key="device")
    module, ckpt = load_model(path, where)
    return Model(ckpt.path, module, ckpt.meta, where)


def evaluate(checkpoint: str | Path, *overrides: str, run_dir: str | Path | None = None,
             config_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """``annkit eval checkpoint=<checkpoint> <overrides>`` in this process: the report, and metrics.json (returned
    as a dict) in the run dir."""
    from annkit.tasks.evaluate import evaluate_checkpoint

    cfg, _, where = setup("eval", [override("checkpoint", str(checkpoint)), *overrides], None, run_dir, config_dir)
    protect(where, task="eval", sweep=False, overwrite=bool(cfg.get("overwrite")), overwrite_key="overwrite")
    where.mkdir(parents=True, exist_ok=True)
    with restored_process_state():
        return evaluate_checkpoint(cfg, where, console=console_for(progress))


def show(
    path: str | Path | Run, *overrides: str, run_dir: str | Path | None = None, progress: bool = True
) -> list[Path]:
    """``annkit show <path> <overrides>`` in this process: the pictures of a run dir's best checkpoint (or of a
    checkpoint) as PNGs in ``run_dir`` (default ``outputs/show/runs/<time>``); returns their paths."""
    from annkit.tasks.show import show_pictures

    where_from = path.run_dir if isinstance(path, Run) else path
    cfg, _, where = setup("show", [override("path", str(where_from)), *overrides], None, run_dir, None)
    protect(where, task="show", sweep=False, overwrite=bool(cfg.get("overwrite")), overwrite_key="overwrite")
    where.mkdir(parents=True, exist_ok=True)
    with restored_process_state():
        return show_pictures(cfg, where, console=console_for(progress))


def autodiff(expression: str, mode: str = "both", progress: bool = True, **at: float) -> dict[str, Any]:
    """``annkit autodiff '<expression>' x=3 y=4``: the graph in forward and reverse mode (printed unless
    ``progress=False``) and ``{"f", "forward", "reverse", "torch", "agree"}``: f, each mode's partials, torch's."""
    from annkit.tasks.autodiff import MODES, Request, differentiate

    if mode not in MODES:
        raise AnnkitError(f"mode={mode!r} is not one of {', '.join(MODES)}.")
    return differentiate(Request(expression, {k: float(v) for k, v in at.items()}, mode), console_for(progress))


def load_data(*overrides: str, config_dir: str | Path | None = None, device: str = "cpu") -> Data:
    """The dataset ``annkit train <overrides>`` trains on, split as that run splits it (its seed): ``.train``,
    ``.val``, ``.test`` (each ``.x``, ``.y``), ``.names``, ``.task``. Images are raw uint8 pixels, the units
    :meth:`Model.predict` takes; table rows are the model's features (standardised when ``dataset.standardize``)."""
    from annkit.config import validate
    from annkit.data import load_data as load

    resolved = validate(compose(*overrides, config_dir=config_dir))
    where = resolve_device(device, key="device")
    with restored_process_state():
        return load(resolved["dataset"], seed=resolved["trainer"]["seed"], device=where)


__all__ = ["LRFind", "Model", "Prediction", "Run", "autodiff", "compose", "evaluate", "load", "load_data", "lr_find",
           "show", "train"]  # fmt: skip
