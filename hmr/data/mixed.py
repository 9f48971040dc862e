"""Mixing datasets with fixed ratios (SPIN/CLIFF-style partitions), deterministic per index.

The index range [0, length) is cut into one contiguous segment per dataset, sized by the ratios; index i in
segment k reads sample ``perm_k[(i − start_k + epoch · seg_k) mod len_k]`` of dataset k (a fixed random
permutation per dataset). Every index maps to one sample, so the mixture works with any sampler, including
``DistributedSampler`` (shuffle there); call :meth:`MixedDataset.set_epoch` each epoch (before creating the
DataLoader iterator; with ``persistent_workers`` the workers keep the epoch they started with) so that
segments shorter than their dataset walk through it over epochs.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class MixedDataset(Dataset):
    """Datasets of one kind (body or hand) mixed with the given ratios."""

    def __init__(self, datasets: Sequence[Dataset], ratios: Sequence[float], length: Optional[int] = None,
                 seed: int = 0) -> None:
        if not datasets:
            raise ValueError("MixedDataset needs at least one dataset")
        if len(ratios) != len(datasets):
            raise ValueError(f"{len(ratios)} ratios for {len(datasets)} datasets")
        ratios = np.asarray(ratios, dtype=np.float64)
        if (ratios < 0).any() or ratios.sum() <= 0:
            raise ValueError(f"mixing ratios must be non-negative with a positive sum, got {ratios.tolist()}")
        kinds = {getattr(d, "kind", None) for d in datasets}
        if len(kinds) > 1:
            raise ValueError(f"cannot mix dataset kinds {sorted(map(str, kinds))} (body and hand items differ)")
        self.datasets = list(datasets)
        self.kind = kinds.pop()
        self.ratios = ratios / ratios.sum()
        self.length = int(length) if length is not None else int(sum(len(d) for d in datasets))
        if self.length <= 0:
            raise ValueError("MixedDataset length must be positive")
        bounds = np.round(np.cumsum(self.ratios) * self.length).astype(np.int64)
        self.starts = np.concatenate([[0], bounds[:-1]])
        self.ends = bounds
        self.permutations = [np.random.default_rng(seed + k).permutation(len(d)) for k, d in enumerate(datasets)]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Shift which samples the segments read (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple:
        """(dataset position k, sample index within dataset k) for a mixed index."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a mixture of {self.length} samples")
        k = int(np.searchsorted(self.ends, index, side="right"))
        seg = int(self.ends[k] - self.starts[k])
        local = (index - int(self.starts[k]) + self.epoch * seg) % len(self.datasets[k])
        return k, int(self.permutations[k][local])

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        k, j = self.locate(int(index))
        item = self.datasets[k][j]
        item["source"] = torch.tensor(k, dtype=torch.long)
        return item

    @property
    def skipped(self) -> int:
        """Unreadable images over all parts since the last reset."""
        return sum(getattr(d, "skipped", 0) for d in self.datasets)

    def reset_skipped(self) -> None:
        """Reset every part's unreadable-image counter."""
        for d in self.datasets:
            if hasattr(d, "reset_skipped"):
                d.reset_skipped()

    def segment_sizes(self) -> List[int]:
        """Number of mixed indices per dataset (the realised ratios × length)."""
        return [int(e - s) for s, e in zip(self.starts, self.ends)]
