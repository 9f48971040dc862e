"""Training items streamed from webdataset shards: disjoint shards per rank and worker, mixing ratios, exact resume.

The stream is a pure function of (seed, rank, world size, worker count, per-rank batch size, start step):

* Reader ``q = rank * workers + worker`` of ``Q = world_size * workers`` reads, in epoch ``e`` of set ``k``, the
  shards ``perm_{k,e}[q::Q]`` (``perm_{k,e}`` a seeded permutation of the set's shards), each loaded whole and
  visited in a seeded order: in one epoch every sample is read by exactly one reader (equal shard sizes and a
  shard count divisible by ``Q`` make the readers' epochs line up; otherwise a reader that runs out starts its
  next epoch early). A set needs at least ``Q`` shards.
* Each sample slot draws its set from the mixing ratios with the reader's own seeded generator.
* Augmentation is seeded per sample from (seed, set, epoch, source index), as the map-style path does.
* A DataLoader hands out batches of its workers in turn, so after ``s`` steps worker ``w`` has produced the
  batches ``w, w + W, ...`` below ``s``; resuming at step ``s`` skips exactly those samples — whole shards by
  their counts in the index, unread, the rest without decoding — and renumbers the workers so that the loader's
  first worker continues with batch ``s``. Resume is exact for
  the same world size, worker count and batch size.

Images that no longer decode (a shard damaged after conversion) are replaced by the set's next sample and
counted in the item's ``unreadable``; the resume skip does not decode, so such a substitution before the resume
point shifts that reader by one sample.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import group_by_keys, tar_file_expander

from hmr.data.base import DatasetOptions, ImageDataset
from hmr.data.image import ImageReadError, decode_image
from hmr.data.shards.format import ShardIndex, decode_annotation, read_index
from hmr.engine.sampler import seed_sample

IMAGE_EXTS = ("jpg", "jpeg", "png")
_SET_SEED = 7919      # separates the per-sample seeds of different sets
_MIX_SEED = 104729    # separates the mixing draws from the shard orders


class ShardItems(ImageDataset):
    """The item maker of a converted split: the source reader's contract, images from shard bytes."""

    def __init__(self, index: ShardIndex, options: DatasetOptions) -> None:
        super().__init__(index.name, options)
        for key, value in index.contract.items():
            setattr(self, key, value)
        self.num_samples = index.num_samples

    def __len__(self) -> int:
        return self.num_samples


def read_shard(path: Path) -> List[Dict[str, bytes]]:
    """All samples of one tar shard, in file order (webdataset's own tar reader)."""
    with open(path, "rb") as stream:
        return list(group_by_keys(tar_file_expander([{"url": str(path), "stream": stream}])))


def _image_bytes(sample: Dict[str, bytes]) -> Tuple[str, bytes]:
    for ext in IMAGE_EXTS:
        if ext in sample:
            return ext, sample[ext]
    raise ImageReadError(f"{sample.get('__url__')}: sample {sample.get('__key__')} has no image member")


class ShardStream(IterableDataset):
    """An endless stream of training items from one or more converted splits mixed by ``ratios``."""

    def __init__(self, folders: Sequence[Path], ratios: Sequence[float], options: Sequence[DatasetOptions],
                 seed: int = 0, rank: int = 0, world_size: int = 1, batch_size: int = 1, start_step: int = 0,
                 max_substitutions: int = 32) -> None:
        if not folders or len(folders) != len(ratios) or len(options) != len(folders):
            raise ValueError("ShardStream needs one ratio and one DatasetOptions per shard folder")
        p = np.asarray(ratios, dtype=np.float64)
        if (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"mixing ratios must be non-negative with a positive sum, got {list(ratios)}")
        self.folders = [Path(f) for f in folders]
        self.indexes = [read_index(f) for f in self.folders]
        kinds = {ix.contract["kind"] for ix in self.indexes}
        if len(kinds) > 1:
            raise ValueError(f"cannot mix dataset kinds {sorted(kinds)} (body and hand items differ)")
        for folder, ix in zip(self.folders, self.indexes):
            if ix.num_samples == 0:
                raise ValueError(f"{folder}: the converted split holds no samples")
        self.kind = kinds.pop()
        self.ratios = p / p.sum()
        self.items = [ShardItems(ix, opts) for ix, opts in zip(self.indexes, options)]
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.batch_size, self.start_step = int(batch_size), int(start_step)
        self.max_substitutions = int(max_substitutions)

    @property
    def num_samples(self) -> int:
        return sum(ix.num_samples for ix in self.indexes)

    def batches_per_epoch(self, global_batch: int) -> int:
        """Steps per pass over all converted samples (at least 1)."""
        return max(1, self.num_samples // int(global_batch))

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        info = get_worker_info()
        physical, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # The loader asks worker 0 first; resumed at step s, worker 0 must continue the stream of the worker
        # that served batch s in the uninterrupted run (s mod workers), and so on round the ring.
        worker = (physical + self.start_step) % workers
        reader, readers = self.rank * workers + worker, self.world_size * workers
        for folder, ix in zip(self.folders, self.indexes):
            if len(ix.shards) < readers:
                raise ValueError(f"{folder} has {len(ix.shards)} shards, fewer than the {readers} readers "
                                 f"(world size {self.world_size} x {workers} workers): convert it with a smaller "
                                 "--shard-size")
        mix = np.random.default_rng([self.seed, _MIX_SEED, reader])
        choices = len(self.folders)
        skips = [0] * choices    # samples this reader consumed per set before the resume step: replay the draws
        for _ in range(len(range(worker, self.start_step, workers)) * self.batch_size):
            skips[self._draw(mix, choices)] += 1
        streams = [self._set_stream(k, reader, readers, skips[k]) for k in range(choices)]
        while True:
            k = self._draw(mix, choices)
            yield self._make_item(k, streams[k])

    def _draw(self, mix: np.random.Generator, choices: int) -> int:
        return 0 if choices == 1 else int(mix.choice(choices, p=self.ratios))

    def _set_stream(self, k: int, reader: int, readers: int, skip: int = 0
                    ) -> Iterator[Tuple[int, Dict[str, bytes]]]:
        """(epoch, raw sample) of set ``k`` for one reader, endlessly, after its first ``skip`` samples (whole
        shards are skipped by their counts in the index, unread)."""
        shards = self.indexes[k].shards
        epoch = 0
        while True:
            order = np.random.default_rng([self.seed, k, epoch]).permutation(len(shards))
            for s in order[reader::readers]:
                count = int(shards[s]["samples"])
                if skip >= count:
                    skip -= count
                    continue
                samples = read_shard(self.folders[k] / shards[s]["file"])
                for j in np.random.default_rng([self.seed, k, epoch, int(s)]).permutation(len(samples))[skip:]:
                    yield epoch, samples[j]
                skip = 0
            epoch += 1

    def _make_item(self, k: int, stream: Iterator[Tuple[int, Dict[str, bytes]]]) -> Dict[str, torch.Tensor]:
        maker = self.items[k]
        for attempt in range(self.max_substitutions):
            epoch, raw = next(stream)
            index = int(raw["__key__"])
            name = f"{raw.get('__url__')}:{raw['__key__']}"
            seed_sample(self.seed + _SET_SEED * k, epoch, index)
            try:
                ext, data = _image_bytes(raw)
                image = decode_image(data, name)
            except ImageReadError as exc:
                maker.skips.record(name, str(exc))
                continue
            item = maker.make_item(index, image, decode_annotation(raw["json"], name))
            item["source"] = torch.tensor(k, dtype=torch.long)
            item["unreadable"] = torch.tensor(attempt)
            return item
        raise RuntimeError(f"{self.folders[k]}: {self.max_substitutions} consecutive undecodable images; "
                           "re-convert the split")
