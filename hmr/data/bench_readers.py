"""The readers ``tools/bench_data.py`` times, and the report it prints (:mod:`hmr.data.throughput` measures)."""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List

from hmr.data.registry import build_dataset
from hmr.data.shards import ShardStream, write_shards
from hmr.data.throughput import (ReaderThroughput, decoder_times, measure_reader, workers_needed,
                                 write_photo_set)

GOAL_PER_WORKER = 400.0   # samples/s per worker for 256x192 crops from 512-pixel JPEGs (issue 19)
BODY_CROP, HAND_CROP = (256, 192), (224, 224)   # the GPU presets' crop sizes


class _StreamAsSequence:
    """A stream's next item for any index (what :func:`measure_reader` needs; ``n`` is its nominal length)."""

    def __init__(self, stream: ShardStream, n: int) -> None:
        self.stream, self.n, self.it = stream, n, iter(stream)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return next(self.it)


def _cfg(data_root: Path, crop, sets: Dict[str, Any]) -> Dict[str, Any]:
    return {"data": {"root": str(data_root), "crop_size": list(crop), "sets": sets}}


def _readers(tmp: Path, data_root: Path, samples: int) -> List[tuple]:
    """(name, dataset, note) per reader; synthetic ones only where rendered."""
    photo_npz = write_photo_set(tmp / "photos", num_images=64)
    photo_cfg = _cfg(tmp, BODY_CROP, {"photos": {"type": "spin_npz", "npz": str(photo_npz),
                                                 "images": str(photo_npz.parent)}})
    photos = build_dataset("photos", "train", photo_cfg)
    readers = [("photos_512 (spin_npz)", photos, "512-px JPEGs of real photos")]
    write_shards(build_dataset("photos", "train", photo_cfg, augment=False), tmp / "shards", "train",
                 shard_size=16)
    stream = ShardStream([tmp / "shards"], [1.0], [photos.options], seed=0)
    readers.append(("photos_512 (shards)", _StreamAsSequence(stream, samples), "the same photos as webdataset shards"))
    body_sets = {"synth_body": {"npz": "body_quick/{split}.npz", "images": "body_quick"}}
    if (data_root / "body_quick" / "train.npz").is_file():
        readers.append(("synthetic_body (spin_npz)",
                        build_dataset("synth_body", "train", _cfg(data_root, BODY_CROP, body_sets)),
                        "rendered body set"))
    if (data_root / "hand_quick" / "training_K.json").is_file():
        readers.append(("synthetic_hand (freihand)",
                        build_dataset("synth_hand", "train", _cfg(data_root, HAND_CROP,
                                                                  {"synth_hand": {"root": "hand_quick"}})),
                        "rendered hand set"))
    return readers


def run_data_benchmark(tmp: Path, data_root: Path, samples: int, batch_size: int,
                       target_rate: float) -> Dict[str, Any]:
    """Time every reader and the JPEG decoders; returns rows and printable lines."""
    rows: List[ReaderThroughput] = []
    notes = {}
    for name, dataset, note in _readers(tmp, data_root, samples):
        rows.append(measure_reader(name, dataset, samples, batch_size))
        notes[name] = note
    photos = sorted((tmp / "photos" / "images").glob("*.jpg"))[:4]
    decoders = decoder_times(photos)
    lines = [f"per data-loader worker (one process, one thread; {os.cpu_count()} CPUs here), {samples} samples each:"]
    for row in rows:
        lines.append(f"  {row.reader:28s} crop {row.crop_hw[0]}x{row.crop_hw[1]} from {row.image_hw[0]}x"
                     f"{row.image_hw[1]}: {row.samples_per_s:7.1f} samples/s  (item {row.stage_ms['item']:.2f} ms"
                     f" + collate {row.stage_ms['collate']:.2f} ms)  -> "
                     f"{workers_needed(target_rate, row.samples_per_s)} workers for {target_rate:.0f} img/s")
    base = decoders["opencv"]
    lines.append("JPEG decoding of the 512-px photos, ms per image (baseline: opencv imdecode + BGR->RGB):")
    for name, ms in decoders.items():
        lines.append(f"  {name:16s} {ms:.3f} ms  ({base / ms:.2f}x vs opencv)" if name != "read_file"
                     else f"  {name:16s} {ms:.3f} ms")
    reference = next(r for r in rows if r.reader.startswith("photos_512 (spin_npz)"))
    verdict = "meets" if reference.samples_per_s >= GOAL_PER_WORKER else "misses"
    lines.append(f"goal: >= {GOAL_PER_WORKER:.0f} samples/s per worker for 256x192 crops from 512-px JPEGs: "
                 f"{reference.samples_per_s:.1f} ({verdict})")
    return {"rows": [asdict(r) | {"note": notes[r.reader]} for r in rows], "decoders_ms": decoders,
            "target_rate": target_rate, "goal_per_worker": GOAL_PER_WORKER, "lines": lines}
