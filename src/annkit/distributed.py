"""Training over processes: ``torchrun --nproc-per-node=N -m annkit train …`` (DistributedDataParallel).

torchrun starts N copies of the command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address in the environment. :func:`world_from_env` reads them; :func:`init` joins the
process group (gloo on CPU, nccl on CUDA, one GPU per local rank). Then:

* every rank draws the same seeded permutation per epoch and takes its own disjoint shard of it
  (:class:`annkit.data.Batcher` with ``shard=(rank, world)``), in batches of
  ``trainer.batch_size / world``: ``trainer.batch_size`` stays the global (effective) batch, so
  N processes take the same steps one process would;
* DistributedDataParallel all-reduces (averages) the gradients in ``backward``, so every rank
  makes the same update; batch-norm buffers come from rank 0 (DDP broadcasts them at each
  forward, and :func:`broadcast_buffers` before each evaluation);
* the training sums (loss, penalty, hits, count) are all-reduced at each host read
  (:func:`all_sum`), so every rank sees the same epoch row, best epoch and early stop;
* only rank 0 logs, checkpoints and writes metrics.json. The other ranks print nothing, and Hydra
  gives them a throw-away run dir (:func:`rank_argv`) that is deleted when they exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    local_size: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World | None:
    """The torchrun world of this process, or None when it runs alone (WORLD_SIZE unset or 1)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return None
    return World(
        int(os.environ["RANK"]),
        size,
        int(os.environ.get("LOCAL_RANK", "0")),
        int(os.environ.get("LOCAL_WORLD_SIZE", str(size))),
    )


def init(world: World, device: torch.device) -> torch.device:
    """Join the process group (``env://``: torchrun's rendezvous); the device of this rank."""
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.size)
    return device


def backend() -> str:
    return str(dist.get_backend())


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the ranks (in place; every rank gets the sum)."""
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every rank."""
    for buffer in model.buffers():
        dist.broadcast(buffer, 0)


def max_difference(model: nn.Module) -> float:
    """The largest |w − w₀| over every parameter and buffer, against rank 0's copy (0.0: the ranks agree)."""
    worst = torch.zeros((), device=next(model.parameters()).device)
    for tensor in model.state_dict().values():
        if not tensor.is_floating_point():
            continue
        reference = tensor.detach().clone()
        dist.broadcast(reference, 0)
        worst = torch.maximum(worst, (tensor.detach() - reference).abs().max())
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


def finish() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank_argv(args: list[str]) -> list[str]:
    """A rank other than 0 writes nothing that lasts: Hydra's run dir becomes a temporary folder,
    removed at exit, and no .hydra record. Rank 0 (and a single process) keeps ``args``."""
    world = world_from_env()
    if world is None or world.main:
        return args
    scratch = tempfile.mkdtemp(prefix=f"annkit-rank{world.rank}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [*args, f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
