"""Sharded training data: webdataset tar shards written from any registered dataset and streamed in training.

``write_shards`` converts a map-style reader (``tools/make_shards.py``); ``build_shard_stream`` is what the
trainer reads when ``data.shards`` is set: ``<data.shards>/<name>/<split>/`` for every set in ``data.train``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hmr.data.registry import _get, dataset_options, dataset_spec, train_mixture
from hmr.data.shards.format import ShardIndex, read_index
from hmr.data.shards.stream import ShardStream, read_shard
from hmr.data.shards.writer import write_shards

__all__ = ["ShardIndex", "ShardStream", "build_shard_stream", "read_index", "read_shard", "shard_folder",
           "write_shards"]


def shard_folder(cfg: Mapping[str, Any], name: str, split: str = "train") -> Path:
    """Where the converted ``split`` of set ``name`` lives: ``<data.shards>/<name>/<split>``."""
    root = _get(cfg, "data.shards")
    if not root:
        raise ValueError("data.shards is not set (the folder that tools/make_shards.py wrote into)")
    return Path(root) / name / split


def build_shard_stream(cfg: Mapping[str, Any], seed: int, rank: int, world_size: int, batch_size: int,
                       start_step: int = 0, split: str = "train") -> ShardStream:
    """The training stream of ``data.train`` read from shards (``batch_size`` per rank)."""
    names, ratios = train_mixture(cfg)
    folders = [shard_folder(cfg, n, split) for n in names]
    options = []
    for name, folder in zip(names, folders):
        kind = read_index(folder).contract["kind"]
        try:
            spec = dataset_spec(name, cfg)
        except (KeyError, ValueError):   # a set known only by its shards: the config's crop size applies
            spec = {}
        options.append(dataset_options(spec, kind, split, cfg))
    return ShardStream(folders, ratios, options, seed=seed, rank=rank, world_size=world_size,
                       batch_size=batch_size, start_step=start_step)
