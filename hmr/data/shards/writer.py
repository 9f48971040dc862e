"""Convert any registered dataset split into webdataset tar shards (``tools/make_shards.py``).

Samples are written in a seeded random order (so that a shard is not one video or one subject: a streaming
reader only shuffles shards and the samples inside each), ``shard_size`` per shard. Each shard is written under
a temporary name and renamed when complete, and ``index.json`` comes last, so a killed conversion restarts
where it stopped (finished shards are kept; the parameters must be the same, which ``.conversion.json`` checks).
Images that cannot be read or decoded are left out and counted in the index.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import webdataset as wds

from hmr.data.base import ImageDataset
from hmr.data.image import ImageReadError, decode_image
from hmr.data.shards.format import (CONTRACT_ATTRS, ShardIndex, encode_annotation, shard_file_name,
                                    write_index)
from hmr.utils.io import write_json

PARAMS_NAME = ".conversion.json"


def _contract(dataset: ImageDataset) -> dict:
    return {k: getattr(dataset, k) for k in CONTRACT_ATTRS}


def _check_params(out_dir: Path, params: dict) -> None:
    path = out_dir / PARAMS_NAME
    if path.is_file():
        before = json.loads(path.read_text())
        if before != params:
            raise ValueError(f"{out_dir} holds an unfinished conversion with other parameters ({before}); "
                             f"delete the folder or convert with the same ones ({params})")
    else:
        write_json(path, params)


def write_shards(dataset: ImageDataset, out_dir: Path, split: str, shard_size: int = 1000,
                 shuffle_seed: Optional[int] = 0,
                 on_shard: Optional[Callable[[int, int], None]] = None) -> ShardIndex:
    """Write ``dataset`` (a map-style reader) as shards into ``out_dir``; returns the index it wrote.

    ``shuffle_seed`` None keeps the source order. ``on_shard(done, total)`` reports progress."""
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    order = np.arange(n) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(n)
    _check_params(out_dir, {"name": dataset.name, "split": split, "samples": n, "shard_size": shard_size,
                            "shuffle_seed": shuffle_seed})
    chunks = [order[i:i + shard_size] for i in range(0, n, shard_size)]
    index = ShardIndex(name=dataset.name, split=split, contract=_contract(dataset))
    for number, chunk in enumerate(chunks):
        path = out_dir / shard_file_name(number)
        counts_path = path.with_suffix(".json")   # samples and skips of a finished shard
        if not (path.is_file() and counts_path.is_file()):
            written, skipped = _write_one_shard(dataset, chunk, path)
            write_json(counts_path, {"samples": written, "skipped_unreadable": skipped})
        counts = json.loads(counts_path.read_text())
        index.shards.append({"file": path.name, "samples": int(counts["samples"])})
        index.skipped_unreadable += int(counts["skipped_unreadable"])
        if on_shard is not None:
            on_shard(number + 1, len(chunks))
    write_index(out_dir, index)
    return index


def _write_one_shard(dataset: ImageDataset, indices: np.ndarray, path: Path) -> tuple[int, int]:
    """Write one tar (temporary name, then rename); returns (samples written, unreadable images left out)."""
    tmp = path.with_name(f".{path.name}.tmp")
    written = skipped = 0
    with open(tmp, "wb") as handle:
        with wds.TarWriter(handle, encoder=False, mtime=0.0) as sink:
            for i in indices:
                ann = dataset.annotation(int(i))
                image_path = Path(ann.image_path)
                try:
                    data = image_path.read_bytes()
                    decode_image(data, str(image_path))
                except (OSError, ImageReadError) as exc:
                    dataset.skips.record(str(image_path), str(exc))
                    skipped += 1
                    continue
                ext = image_path.suffix.lower().lstrip(".") or "jpg"
                sink.write({"__key__": f"{int(i):09d}", ext: data, "json": encode_annotation(ann)})
                written += 1
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return written, skipped
