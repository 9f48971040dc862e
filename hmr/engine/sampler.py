"""A resumable, distributed, epoch-seeded batch order, and per-sample RNG seeding.

Every (epoch, position) maps to the same global batch in every run, so a run killed at step k and resumed
sees exactly the batches an uninterrupted run sees; with ``world_size`` ranks each rank takes an interleaved
share of every global batch, so a 2-process run consumes the same global batches as a 1-process run.
Augmentation randomness is seeded per sample from (seed, epoch, index) by :class:`SeededDataset`, so it does
not depend on worker count, rank or resumption; the wrapper also tags each item with the number of unreadable
images skipped to serve it (``unreadable``).
"""
from __future__ import annotations

import random
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

_MIX = 1_000_003


def epoch_order(num_items: int, seed: int, epoch: int, weights: Sequence[float] | None = None) -> np.ndarray:
    """The global sample order of one epoch: a permutation, or a weighted draw with replacement."""
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        return rng.permutation(num_items)
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(num_items, size=num_items, replace=True, p=p / p.sum())


class ResumableBatchSampler(Sampler[List[int]]):
    """Yields this rank's share of each global batch, as sample keys ``epoch * num_items + index``.

    Global batch ``b`` of an epoch is ``order[b*G:(b+1)*G]`` (G = global batch size, last partial batch dropped);
    rank r takes items ``r::world_size`` of it. Iteration starts at ``(start_epoch, start_batch)`` and runs forever.
    """

    def __init__(self, num_items: int, global_batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 weights: Sequence[float] | None = None, start: Tuple[int, int] = (0, 0)) -> None:
        if global_batch_size % world_size:
            raise ValueError(f"global batch {global_batch_size} is not divisible by world size {world_size}")
        if num_items < global_batch_size:
            raise ValueError(f"dataset has {num_items} samples, fewer than one global batch ({global_batch_size})")
        self.num_items, self.global_batch_size, self.seed = num_items, global_batch_size, seed
        self.rank, self.world_size, self.weights = rank, world_size, weights
        self.start = start

    @property
    def batches_per_epoch(self) -> int:
        return self.num_items // self.global_batch_size

    def position_after(self, steps: int) -> Tuple[int, int]:
        """(epoch, batch) reached after ``steps`` batches from the start of training."""
        return divmod(steps, self.batches_per_epoch)

    def __iter__(self) -> Iterator[List[int]]:
        epoch, first = self.start
        while True:
            order = epoch_order(self.num_items, self.seed, epoch, self.weights)
            for b in range(first, self.batches_per_epoch):
                chunk = order[b * self.global_batch_size:(b + 1) * self.global_batch_size]
                yield [int(epoch * self.num_items + i) for i in chunk[self.rank::self.world_size]]
            epoch, first = epoch + 1, 0

    def __len__(self) -> int:  # a DataLoader asks; the stream is endless, report one epoch
        return self.batches_per_epoch


def seed_sample(seed: int, epoch: int, index: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs from (seed, epoch, sample index)."""
    sample_seed = ((seed * _MIX + epoch) * _MIX + index) % 2**32
    random.seed(sample_seed)
    np.random.seed(sample_seed)
    # the CPU generator only: torch.manual_seed also queues a CUDA seeding that records a stack trace per call
    # (~0.5 ms, a sixth of a sample's cost); data workers draw from the CPU generator alone
    torch.default_generator.manual_seed(sample_seed)


class SeededDataset(Dataset):
    """Wraps a dataset so that item ``epoch * N + i`` returns ``base[i]`` with Python, numpy and torch RNGs
    seeded from (seed, epoch, i): augmentation is then a pure function of the sample key."""

    def __init__(self, base: Dataset, seed: int) -> None:
        self.base, self.seed = base, seed
        self.num_items = len(base)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, key: int):
        epoch, index = divmod(int(key), self.num_items)
        seed_sample(self.seed, epoch, index)
        if hasattr(self.base, "set_epoch"):  # mixtures walk through long datasets over epochs
            self.base.set_epoch(epoch)
        item = self.base[index]
        if isinstance(item, dict) and "index" in item:
            item["unreadable"] = torch.tensor(self._substitutions(index, int(item["index"])))
        return item

    def _substitutions(self, index: int, served: int) -> int:
        """Unreadable images skipped to serve ``index``: a reader substitutes sample j+1, j+2, ... for an
        unreadable j and reports the sample it served in ``item["index"]``. Counting per item (instead of
        a shared counter) counts only the batches training consumes, not those workers prefetched."""
        part, local = self.base, index
        if hasattr(self.base, "locate") and hasattr(self.base, "datasets"):  # a MixedDataset
            k, local = self.base.locate(index)
            part = self.base.datasets[k]
        return (served - local) % len(part)
