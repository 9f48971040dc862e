"""Throughput of the training input pipeline (read, decode, crop, augment, collate) per data-loader worker.

A DataLoader worker is one process with one torch thread, so every measurement here runs in the calling
process with ``torch.set_num_threads(1)``: samples/s per worker, which times the number of workers gives what
a node can feed (``tools/bench_data.py``). Items are produced exactly as in training (:class:`SeededDataset`
keys, augmentation on, ``default_collate`` per batch).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from hmr.data.image import decode_image
from hmr.engine.sampler import SeededDataset
from hmr.utils.io import save_npz


@dataclass
class ReaderThroughput:
    """One reader's measured rate: whole pipeline and its stages (milliseconds per sample)."""

    reader: str
    crop_hw: Tuple[int, int]
    image_hw: Tuple[int, int]
    samples: int
    samples_per_s: float
    stage_ms: Dict[str, float] = field(default_factory=dict)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run with one torch thread, as a DataLoader worker does."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _photos(side: int) -> List[np.ndarray]:
    """Public-domain photos shipped in pip packages (skimage, matplotlib), longest side resized to ``side``."""
    import matplotlib.cbook
    import skimage.data

    grace = cv2.cvtColor(cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
                         cv2.COLOR_BGR2RGB)
    camera = np.repeat(skimage.data.camera()[..., None], 3, axis=2)
    photos = []
    for image in (skimage.data.astronaut(), camera, grace, skimage.data.coffee()):
        f = side / max(image.shape[:2])
        size = (round(image.shape[1] * f), round(image.shape[0] * f))
        photos.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA) if f != 1 else image)
    return photos


def write_photo_set(out_dir: Path, num_images: int = 64, side: int = 512, quality: int = 92) -> Path:
    """A SPIN-npz body set of ``num_images`` JPEGs of real photos with longest side ``side`` (the benchmark's
    "512-pixel JPEGs"); annotations are a centred box and empty labels (timing does not depend on them).
    Returns the npz path; images are relative to its folder."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    photos = _photos(side)
    names, centers, scales, sizes = [], [], [], []
    for i in range(num_images):
        image = photos[i % len(photos)]
        name = f"images/{i:05d}.jpg"
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        (out_dir / name).write_bytes(buf.tobytes())
        h, w = image.shape[:2]
        names.append(name)
        centers.append([w / 2.0, h / 2.0])
        scales.append(0.8 * max(h, w) / 200.0)
        sizes.append([h, w])
    npz = out_dir / "train.npz"
    save_npz(npz, imgname=np.asarray(names), center=np.asarray(centers), scale=np.asarray(scales),
             img_size=np.asarray(sizes))
    return npz


def measure_reader(name: str, dataset: Dataset, num_samples: int, batch_size: int = 64, seed: int = 0,
                   rounds: int = 3) -> ReaderThroughput:
    """Samples/s of ``dataset`` through the training item path and collation, on one thread: the median of
    ``rounds`` passes over ``num_samples`` random samples (the machine may be shared)."""
    seeded = SeededDataset(dataset, seed)
    n = len(dataset)  # type: ignore[arg-type]
    passes = []
    with one_thread():
        default_collate([seeded[0]])  # warm caches and lazy imports
        for r in range(rounds):
            order = np.random.default_rng([seed, r]).integers(0, n, size=num_samples)
            start = time.perf_counter()
            collate_s = 0.0
            for b in range(0, num_samples, batch_size):
                items = [seeded[int(k)] for k in order[b:b + batch_size]]
                t = time.perf_counter()
                default_collate(items)
                collate_s += time.perf_counter() - t
            passes.append((time.perf_counter() - start, collate_s))
    total, collate_s = sorted(passes)[len(passes) // 2]
    first = seeded[0]
    crop_hw = tuple(int(v) for v in first["img"].shape[-2:])
    image_hw = tuple(int(v) for v in first["img_size"].tolist())
    return ReaderThroughput(name, crop_hw, image_hw, num_samples, num_samples / total,
                            {"item": 1e3 * (total - collate_s) / num_samples, "collate": 1e3 * collate_s / num_samples})


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def decoder_times(paths: Sequence[Path], repeats: int = 20) -> Dict[str, float]:
    """Median ms per image of the JPEG decoders considered for the pipeline (one thread), over ``paths``.

    ``opencv`` is the decoder the pipeline used before (imdecode + BGR->RGB); ``simplejpeg`` is today's default
    (:func:`hmr.data.image.decode_image`, identical pixels); ``opencv_reduced2`` decodes at half resolution
    (different pixels: not adopted, shown for what it would give)."""
    blobs = [Path(p).read_bytes() for p in paths]
    arrays = [np.frombuffer(b, dtype=np.uint8) for b in blobs]
    with one_thread():
        cv2.setNumThreads(1)
        out = {
            "read_file": sum(_median_ms(lambda p=p: Path(p).read_bytes(), repeats) for p in paths),
            "opencv": sum(_median_ms(lambda a=a: cv2.cvtColor(cv2.imdecode(a, cv2.IMREAD_COLOR),
                                                              cv2.COLOR_BGR2RGB), repeats) for a in arrays),
            "simplejpeg": sum(_median_ms(lambda b=b: decode_image(b), repeats) for b in blobs),
            "opencv_reduced2": sum(_median_ms(lambda a=a: cv2.imdecode(a, cv2.IMREAD_REDUCED_COLOR_2), repeats)
                                   for a in arrays),
        }
    return {k: v / len(paths) for k, v in out.items()}


def workers_needed(target_samples_per_s: float, per_worker: float) -> int:
    """Data-loader workers needed to feed ``target_samples_per_s`` at ``per_worker`` samples/s each."""
    if per_worker <= 0:
        raise ValueError(f"per-worker rate must be positive, got {per_worker}")
    return math.ceil(target_samples_per_s / per_worker)
