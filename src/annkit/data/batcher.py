"""Minibatches of a dataset that lives on the device.

No DataLoader and no per-sample Python: an epoch is one ``randperm`` on the device and
``ceil(N / batch_size)`` index-gathers. Batches come out as the data holds them (images stay
uint8); :mod:`annkit.data.preprocess` turns them into model inputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch


class Batcher:
    """Iterate over ``(x[idx], y[idx], w[idx])`` batches; every sample once per epoch.

    ``w`` (per-sample weights) is optional; without it the third item is None. With ``shuffle``
    each pass draws a new permutation from ``generator`` (on the data's device); without it,
    batches are contiguous slices (views, no copy). The last batch is smaller when
    ``batch_size`` does not divide N — except that a lone last sample joins the batch before it
    (a batch of one breaks batch norm's statistics in training).

    ``shard=(rank, world)`` (DistributedDataParallel): each pass draws the same permutation of all
    N samples on every rank (the generators are seeded alike) and this rank takes every
    ``world``-th of them from position ``rank``: disjoint shards of N // world samples each, so
    every rank takes the same number of steps (up to world − 1 samples sit out each pass, different
    ones every time). ``batch_size`` is then the per-rank batch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        weights: torch.Tensor | None = None,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] | None = None,
    ) -> None:
        if len(x) != len(y) or (weights is not None and len(weights) != len(y)):
            raise ValueError(f"{len(x)} inputs, {len(y)} targets, {None if weights is None else len(weights)} weights")
        self.x, self.y, self.w = x, y, weights
        self.shuffle = shuffle
        self.generator = generator
        self.shard = shard
        n = len(y) if shard is None else len(y) // shard[1]
        edges = [*range(0, n, batch_size), n]
        if len(edges) > 2 and edges[-1] - edges[-2] == 1:
            del edges[-2]
        self.bounds = list(itertools.pairwise(edges))  # (start, stop) of each batch

    def __len__(self) -> int:
        return len(self.bounds)

    def permutation(self) -> torch.Tensor | None:
        """The order of the next pass: a fresh ``randperm`` from the generator when shuffling, else None
        (file order); with ``shard``, this rank's share of it."""
        if self.shard is not None:
            n, (rank, world) = len(self.y), self.shard
            order = (
                torch.randperm(n, device=self.y.device, generator=self.generator)
                if self.shuffle
                else torch.arange(n, device=self.y.device)
            )
            return order[: n // world * world].view(-1, world)[:, rank]  # positions rank, rank + world, …
        if not self.shuffle:
            return None
        return torch.randperm(len(self.y), device=self.y.device, generator=self.generator)

    def epoch(
        self, perm: torch.Tensor | None, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Batches ``start``, ``start`` + 1, … of one pass in the order ``perm`` (None: file order).
        A pass stopped after batch k continues exactly with ``epoch(perm, k)``."""
        w = self.w
        for begin, stop in self.bounds[start:]:
            if perm is None:
                yield self.x[begin:stop], self.y[begin:stop], None if w is None else w[begin:stop]
                continue
            idx = perm[begin:stop]
            # index_select: ~5× cheaper than x[idx] for a uint8 batch on CPU (4 µs vs 18 µs)
            yield (
                self.x.index_select(0, idx),
                self.y.index_select(0, idx),
                None if w is None else w.index_select(0, idx),
            )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        return self.epoch(self.permutation())
