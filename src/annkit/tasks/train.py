"""``annkit train``: compose → validate → build → fit → test with the best weights → record.

``train(cfg, run_dir)`` is the only function that reads the config; everything it calls takes
plain arguments. ``main`` is the Hydra entry point (one per subcommand), so ``-m`` sweeps,
``--cfg job``, ``--help``, ``--config-dir`` and shell completion work as in any Hydra app.
"""

from __future__ import annotations

import inspect
import json
import math
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from annkit import __version__
from annkit.checkpoint import CheckpointHook, atomic_write_bytes
from annkit.config import validate
from annkit.data import Batcher, Preprocess, load_image_data
from annkit.errors import AnnkitError, user_errors
from annkit.loop import EarlyStopping, evaluate, fit
from annkit.losses import get_loss
from annkit.models import MLP, activation_name, count_params, summarize
from annkit.runtime import autocast_dtype, generator, resolve_device, seed_everything
from annkit.tracking import ConsoleReporter, TensorBoardLogger, shown


def build_scheduler(
    spec: dict[str, Any], optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, str]:
    """The scheduler of ``spec`` (validated, resolved) and its interval (step | epoch).

    annkit passes the length of the schedule: ``total_steps`` (OneCycleLR) or ``T_max``
    (CosineAnnealingLR) = epochs × steps per epoch, or epochs when ``interval=epoch``.
    """
    spec = dict(spec)
    interval = spec.pop("interval")
    if spec.get("_target_") is None:
        return None, interval
    length = epochs * steps_per_epoch if interval == "step" else epochs
    cls = get_class(spec["_target_"])
    params = inspect.signature(cls).parameters
    filled = {name: length for name in ("total_steps", "T_max") if name in params}
    if issubclass(cls, torch.optim.lr_scheduler.OneCycleLR):
        # torch's one-cycle needs a warm-up phase of ≥ 1 whole step: pct_start·total ≥ 2, else it divides by 0
        pct = spec.get("pct_start", params["pct_start"].default)
        if pct * length < 2:
            unit = "steps" if interval == "step" else "epochs"
            raise AnnkitError(
                f"scheduler=onecycle cannot warm up over this run: pct_start {pct:g} × {length} {unit} = "
                f"{pct * length:g}, and it needs at least 2 (one whole warm-up step). The run has {epochs} "
                f"epoch(s) of {steps_per_epoch} batch(es). Train longer (trainer.epochs, dataset.limit_train), "
                f"use smaller batches (trainer.batch_size), raise scheduler.pct_start, or use scheduler=none "
                f"or scheduler=cosine."
            )
    return instantiate(spec, _convert_="all")(optimizer, **filled), interval


def finite_or_null(tree: Any) -> Any:
    """NaN and ±inf (a diverged run) become null, so metrics.json stays valid JSON."""
    if isinstance(tree, dict):
        return {k: finite_or_null(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [finite_or_null(v) for v in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


def describe_model(hidden: list[int], activation: Any, dropout: float, norm: str, in_features: int, out_features: int) -> str:
    widths = " → ".join(str(w) for w in [in_features, *hidden, out_features])
    if not hidden:
        return f"linear {widths} (softmax regression)"
    extras = [activation_name(activation)]
    if norm != "none":
        extras.append(f"{norm} norm")
    if dropout:
        extras.append(f"dropout {dropout:g}")
    return f"MLP {widths} ({', '.join(extras)})"


def train(cfg: DictConfig, run_dir: Path, console: Console | None = None) -> dict[str, Any]:
    """Train the configured model; write checkpoints, TensorBoard events and metrics.json into ``run_dir``."""
    started = time.perf_counter()
    resolved = validate(cfg)  # every key checked before any data is read
    console = console or Console()
    t, d, m = cfg.trainer, cfg.dataset, cfg.model

    device = resolve_device(t.device)
    seed_everything(t.seed, t.deterministic)
    amp = autocast_dtype(t.precision, device)

    data = load_image_data(
        d.name, root=d.root, search=list(d.search), download=d.download, verify=d.verify,
        val_size=d.val_size, limit_train=d.limit_train, seed=t.seed, device=device,
    )
    if m.norm == "batch" and len(data.train_y) < 2:
        raise AnnkitError(
            f"model.norm=batch needs at least 2 training samples, but the training split holds "
            f"{len(data.train_y)} (dataset.limit_train={d.limit_train}, dataset.val_size={d.val_size}). "
            f"Use more training data, or model.norm=layer / none."
        )
    in_features = math.prod(data.input_shape)
    model = MLP(
        in_features, list(m.hidden), data.num_classes, activation=resolved["model"]["activation"],
        dropout=m.dropout, norm=m.norm, input_dropout=m.input_dropout,
    ).to(device)
    optimizer = instantiate(resolved["optimizer"], _convert_="all")(model.parameters())
    rng = generator(device, t.seed + 1)
    train_batches = Batcher(data.train_x, data.train_y, t.batch_size, shuffle=True, generator=rng)
    val_batches = Batcher(data.val_x, data.val_y, t.eval_batch_size)
    test_batches = Batcher(data.test_x, data.test_y, t.eval_batch_size)
    scheduler, interval = build_scheduler(
        resolved["scheduler"], optimizer, epochs=t.epochs, steps_per_epoch=len(train_batches)
    )
    prepare = Preprocess(data.mean, data.std, hflip=d.augment.hflip, shift=d.augment.shift, generator=rng)
    loss_fn = partial(get_loss(cfg.loss.name), label_smoothing=cfg.loss.label_smoothing)
    eval_loss_fn = get_loss(cfg.loss.name)  # validation/test: the plain loss, no smoothing

    params, _ = count_params(model)
    sched_name = "constant lr" if scheduler is None else f"{type(scheduler).__name__} (per {interval})"
    reporter = ConsoleReporter(console)
    reporter.header(
        [
            ("data", f"{d.name}: train {len(data.train_y):,} · val {len(data.val_y):,} · test {len(data.test_y):,} · "
                     f"{'×'.join(map(str, data.input_shape))} · {data.num_classes} classes"),
            ("source", str(data.source)),
            ("model", describe_model(list(m.hidden), resolved["model"]["activation"], m.dropout, m.norm, in_features, data.num_classes)
                      + f" · {params:,} parameters"),
            ("optim", f"{type(optimizer).__name__} lr {cfg.optimizer.lr:g} · {sched_name} · loss {cfg.loss.name}"
                      + (f" (label smoothing {cfg.loss.label_smoothing:g})" if cfg.loss.label_smoothing else "")),
            ("schedule", f"{t.epochs} epochs × {len(train_batches)} steps of {t.batch_size}"),
            ("device", f"{device} · {'bf16 autocast' if amp else 'fp32'} · torch {torch.__version__} · "
                       f"{torch.get_num_threads()} threads · seed {t.seed}"),
            ("run dir", shown(run_dir)),
        ],
        summarize(model, data.input_shape),
        params,
    )

    meta = {
        "config": resolved,
        "data": {
            "name": d.name, "classes": list(data.classes), "input_shape": list(data.input_shape),
            "mean": data.mean, "std": data.std,
        },
    }
    tensorboard = TensorBoardLogger(run_dir / "tb", OmegaConf.to_yaml(cfg, resolve=True))
    try:
        result = fit(
            model, optimizer, train_batches, val_batches,
            epochs=t.epochs, loss_fn=loss_fn, eval_loss_fn=eval_loss_fn, prepare=prepare,
            scheduler=scheduler, scheduler_interval=interval, grad_clip=t.grad_clip,
            autocast_dtype=amp, best_metric=t.best_metric,
            early_stopping=EarlyStopping(t.early_stopping.metric, t.early_stopping.patience, t.early_stopping.min_delta),
            log_every=t.log_every,
            # saved first, announced last: a row on screen means its checkpoint is on disk
            hooks=[CheckpointHook(run_dir / "checkpoints", model, meta), tensorboard, reporter],
        )
        model.load_state_dict(result.best_state)
        test = evaluate(model, test_batches, loss_fn=eval_loss_fn, prepare=prepare, autocast_dtype=amp)
    except BaseException:
        tensorboard.close()
        raise

    best = result.history[result.best_epoch - 1]
    metrics: dict[str, Any] = {
        "train": {"loss": best["train/loss"], "accuracy": best["train/accuracy"]},
        "val": {"loss": best["val/loss"], "accuracy": best["val/accuracy"]},
        "test": test,
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "stopped_early": result.stopped_early,
        "wall_s": time.perf_counter() - started,
        "train_s": result.train_seconds,
        "samples_per_s": result.samples_seen / result.train_seconds,
        "device": str(device),
        "precision": "bf16" if amp else "fp32",
        "params": params,
        "torch": torch.__version__,
        "annkit": __version__,
        "python": platform.python_version(),
        "data": {"name": d.name, "source": str(data.source), "train": len(data.train_y),
                 "val": len(data.val_y), "test": len(data.test_y)},
        "history": result.history,
    }
    tensorboard.finish(
        resolved,
        {
            "final/test_accuracy": test["accuracy"], "final/test_loss": test["loss"],
            "final/val_accuracy": best["val/accuracy"], "final/val_loss": best["val/loss"],
            "final/train_accuracy": best["train/accuracy"], "final/train_loss": best["train/loss"],
            "final/best_epoch": float(result.best_epoch), "final/wall_s": metrics["wall_s"],
        },
        step=len(result.history),
    )
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(finite_or_null(metrics), indent=2, allow_nan=False).encode())
    reporter.summary(metrics, run_dir)
    return metrics


@hydra.main(version_base=None, config_path="pkg://annkit.configs", config_name="train")
def main(cfg: DictConfig) -> None:
    with user_errors():
        train(cfg, Path(HydraConfig.get().runtime.output_dir))
