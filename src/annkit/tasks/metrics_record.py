"""What a finished ``annkit train`` run records: the checkpoint's metadata, metrics.json (every key docs/getting-started.md
lists), and the final scalars beside the hparams in TensorBoard. Task layer: reads the config beside the results.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from annkit import distributed
from annkit.advice import perceptron_outcome
from annkit.checkpoint import Checkpoint
from annkit.data import plane_of
from annkit.distributed import World
from annkit.fit_state import FitResult
from annkit.metrics import scalars
from annkit.records import versions
from annkit.tasks.build import Built
from annkit.tasks.learning_rate import LearningRate


@dataclass
class Timing:
    """The clock of one run: when this process started, and the seconds earlier processes of it trained."""

    started: float = field(default_factory=time.perf_counter)
    before: float = 0.0  # a resumed run: elapsed_s of its checkpoint

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.started


def checkpoint_meta(used: dict[str, Any], overrides: list[str], built: Built, lr: LearningRate,
                    ckpt: Checkpoint | None) -> dict[str, Any]:  # fmt: skip
    """What every checkpoint of the run carries: the config it trained with (``used``: the lr it chose filled in),
    the lr asked and used, the command line, the constructor arguments of the model and the head, the data's
    task, classes, shape and preprocessing, the earlier parts of a resumed run, and the device."""
    data, head = built.problem.data, built.problem.head
    plane = plane_of(data)  # 2-D data: the plane the pictures cover (annkit show draws over it again)
    resumed = list(ckpt.meta.get("resumed", [])) if ckpt is not None else []
    if ckpt is not None:
        resumed.append({"from": str(ckpt.path), "epoch": ckpt.meta["epoch"], "batch": ckpt.meta["batch"],
                        "step": ckpt.meta["step"]})  # fmt: skip
    meta = {
        "config": used,
        "lr": lr.record(),
        "overrides": overrides,
        "model": built.network.model.spec,
        "head": head.spec(),
        "data": {
            "name": used["dataset"]["name"], "task": data.task, "classes": list(data.names),
            "input_shape": list(data.input_shape), "preprocessing": data.preprocessing, "output_activation": head.output,
            **({"files": data.files} if data.files else {}),
            **({"plane": {"extent": list(plane.extent), "axes": list(plane.axes)}} if plane is not None else {}),
        },
        "resumed": resumed,
        "device": str(built.machine.device),
    }  # fmt: skip
    found = lr.found.summary() if lr.found is not None else ckpt.meta.get("lr_find") if ckpt is not None else None
    if found is not None:
        meta["lr_find"] = found  # a resumed run reports the search its first part made
    return meta


def metrics_record(cfg: dict[str, Any], built: Built, result: FitResult, test: dict[str, Any], meta: dict[str, Any],
                   timing: Timing, warnings: list[str], world: World | None, best_metric: str) -> dict[str, Any]:  # fmt: skip
    """metrics.json: the best epoch's train/val numbers, the test report, how the run went, what it ran on."""
    trainer, data, network, machine = cfg["trainer"], built.problem.data, built.network, built.machine
    best = result.history[result.best_epoch - 1] if result.best_epoch else {}  # epochs=0: nothing trained
    params = sum(p.numel() for p in network.model.parameters())
    trainable = sum(p.numel() for p in network.model.parameters() if p.requires_grad)
    threads = machine.threads
    record: dict[str, Any] = {
        "task": data.task, "names": list(data.names),
        "train": {k.split("/", 1)[1]: v for k, v in best.items() if k.startswith("train/")},
        "val": result.best_val, "test": test, "best_epoch": result.best_epoch, "best_metric": best_metric,
        "epochs": len(result.history), "stopped_early": result.stopped_early,
        "wall_s": timing.elapsed(), "train_s": result.train_seconds,
        "samples_per_s": result.samples_seen / result.train_seconds if result.train_seconds else 0.0,
        "device": str(machine.device), "threads": torch.get_num_threads(),
        **({"thread_changes": threads.changes} if threads is not None and threads.changes else {}),
        "compiled": trainer["compile"], "pid": os.getpid(),
        "started_at": time.time() - (time.perf_counter() - timing.started),  # this process's part (unix time)
        "finished_at": time.time(), "precision": "bf16" if machine.amp else "fp32",
        "params": params, "trainable_params": trainable, "frozen_layers": network.frozen,
        "class_weights": built.problem.class_weights, "nan_policy": trainer["nan_policy"],
        "skipped_batches": result.skipped, "warnings": warnings, "lr": meta["lr"], **versions(),
        "data": _data_record(cfg, built),
        **({"lr_find": meta["lr_find"]} if "lr_find" in meta else {}),
        **({"init_from": network.init.summary()} if network.init is not None else {}),
        **({"resumed": meta["resumed"]} if meta["resumed"] else {}),
        **({"converged": perceptron_outcome(result.history, len(data.train))[0]} if built.step.criterion else {}),
        "history": result.history,
    }  # fmt: skip
    if world is not None:  # every rank takes part; the ranks must hold the same weights
        record["ddp"] = {"world_size": world.size, "backend": distributed.backend(), "global_batch": trainer["batch_size"],
                         "per_rank_batch": trainer["batch_size"] // world.size,
                         "max_weight_difference": distributed.max_difference(network.model)}  # fmt: skip
    return record


def _data_record(cfg: dict[str, Any], built: Built) -> dict[str, Any]:
    data, counts = built.problem.data, built.problem.train_counts
    return {
        "name": cfg["dataset"]["name"], "source": data.source, "train": len(data.train), "val": len(data.val),
        "test": len(data.test), "notes": data.notes, **({"files": data.files} if data.files else {}),
        **({"train_class_counts": dict(zip(data.names, counts))} if counts else {}),
    }  # fmt: skip


def final_scalars(record: dict[str, Any], result: FitResult, nan_policy: str) -> dict[str, float]:
    """The ``final/*`` values TensorBoard shows beside the hparams: test, best val and train numbers."""
    final = {f"final/test_{k}": v for k, v in scalars(record["test"]).items() if "/" not in k}
    final.update({f"final/val_{k}": v for k, v in scalars(result.best_val).items() if "/" not in k})
    final.update({f"final/train_{k}": v for k, v in record["train"].items()})
    final.update({"final/best_epoch": float(result.best_epoch), "final/wall_s": record["wall_s"]})
    if nan_policy == "skip_batch":
        final["final/skipped_batches"] = float(result.skipped)
    return final
