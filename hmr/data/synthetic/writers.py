"""Storage of synthetic sets in the formats real data uses, written shard by shard.

Body sets (SPIN/CLIFF npz):  ``<set>/{train,val,test}.npz`` + ``<set>/images/<split>/%08d.jpg``; ``imgname`` is
relative to ``<set>``. Keys: imgname, center, scale, part, S, pose, shape, has_smpl, openpose, gender, focal_l,
K, img_size, transl, rotmat (see :mod:`hmr.data.synthetic.samples` for their meaning).

Hand sets (FreiHAND layout, one image version):  ``<set>/<prefix>/rgb/%08d.jpg`` and
``<set>/<prefix>_{K,xyz,verts,mano,scale}.json`` with prefix ``training`` (train), ``validation`` (val) and
``evaluation`` (test). ``_mano.json`` rows are [N][1][61]: [0:3] global orientation (camera frame) and [3:48]
finger axis-angle relative to the model's mean hand pose (FreiHAND's flat_hand_mean=False convention; the open
model's mean is zero), [48:58] betas, [58:60] pixel position of keypoint 9 (middle-finger base) and [60] the
metric length ‖xyz9 − xyz10‖ (stand-ins for FreiHAND's weak-perspective root and scale, which loaders do not
use). Plus two side files FreiHAND does not have: ``<prefix>_side.json`` (["right"|"left"] per
sample: "left" = a left hand stored mirrored, see :class:`~hmr.data.synthetic.samples.HandSampler`) and
``<prefix>_extra.npz`` (``rotmat`` (N, 16, 3, 3) per-joint rotations in the camera frame — the matrices the
MANO parameters encode —, ``transl`` (N, 3) for the right model, ``is_left`` (N,), ``img_size`` (N, 2) = h, w).

A shard's images are written first, each through a temporary name and a rename; the shard's annotation file
``<set>/shards/<split>_%05d.npz`` is written last and atomically, so its presence marks a finished shard.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np

from hmr.data.synthetic.samples import Sample
from hmr.utils.file_errors import naming_path
from hmr.utils.io import atomic_open, save_npz

SPLITS = ("train", "val", "test")
FREIHAND_PREFIX = {"train": "training", "val": "validation", "test": "evaluation"}
BODY_KEYS = ("center", "scale", "part", "S", "pose", "shape", "has_smpl", "openpose", "gender", "focal_l", "K",
             "img_size", "transl", "rotmat")
HAND_KEYS = ("K", "xyz", "verts", "mano", "scale", "rotmat", "transl", "is_left", "img_size")
JSON_DECIMALS = 7  # 0.1 micrometre / 1e-7 rad: below float32 resolution of the values stored


def write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Encode an RGB uint8 image as JPEG; written under a temporary name, then renamed (no partial files)."""
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


SHARD_FLOAT32 = ("verts",)  # large per-vertex arrays: float32 in shards (the JSON keeps 7 decimals anyway)


def _stack(samples: Sequence[Sample], keys: Sequence[str]) -> Dict[str, np.ndarray]:
    out = {k: np.stack([np.asarray(s.annotation[k]) for s in samples]) for k in keys}
    for k in SHARD_FLOAT32:
        if k in out:
            out[k] = out[k].astype(np.float32)
    for k in samples[0].meta:
        out[f"meta_{k}"] = np.asarray([s.meta[k] for s in samples])
    return out


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


class SetWriter:
    """Common shard bookkeeping; subclasses define image paths and the final merge."""

    keys: Sequence[str] = ()

    def __init__(self, set_dir: Path, jpeg_quality: int = 92) -> None:
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
        self.set_dir = Path(set_dir)
        self.jpeg_quality = int(jpeg_quality)

    def shard_path(self, split: str, shard: int) -> Path:
        _check_split(split)
        return self.set_dir / "shards" / f"{split}_{shard:05d}.npz"

    def image_path(self, split: str, index: int) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError

    def write_shard(self, split: str, shard: int, start: int, samples: Sequence[Sample]) -> Path:
        """Write the shard's images (global indices start, start+1, ...), then its annotation file."""
        if not samples:
            raise ValueError("a shard needs at least one sample")
        for offset, sample in enumerate(samples):
            path = self.image_path(split, start + offset)
            with naming_path(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_jpeg(path, sample.image, self.jpeg_quality)
        arrays = _stack(samples, self.keys)
        arrays["index"] = np.arange(start, start + len(samples))
        path = self.shard_path(split, shard)
        with naming_path(path):
            save_npz(path, **arrays)
        return path

    def read_shards(self, split: str, num_shards: int) -> Dict[str, np.ndarray]:
        """Concatenate the annotation files of shards 0..num_shards-1 (all must exist)."""
        parts: List[Dict[str, np.ndarray]] = []
        for shard in range(num_shards):
            with np.load(self.shard_path(split, shard), allow_pickle=False) as npz:
                parts.append({k: npz[k] for k in npz.files})
        if not parts:
            return {}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def merge(self, split: str, num_shards: int) -> List[Path]:  # pragma: no cover - abstract
        raise NotImplementedError


class BodySetWriter(SetWriter):
    """SPIN/CLIFF npz + JPEG images (see the module docstring)."""

    keys = BODY_KEYS

    def image_name(self, split: str, index: int) -> str:
        _check_split(split)
        return f"images/{split}/{index:08d}.jpg"

    def image_path(self, split: str, index: int) -> Path:
        return self.set_dir / self.image_name(split, index)

    def merge(self, split: str, num_shards: int) -> List[Path]:
        data = self.read_shards(split, num_shards)
        out = {"imgname": np.array([self.image_name(split, int(i)) for i in data["index"]])}
        for key in BODY_KEYS:
            out[key] = data[key]
        out["gender"] = out["gender"].astype("<U1")
        path = self.set_dir / f"{split}.npz"
        with naming_path(path):
            save_npz(path, **out)
        return [path]


def _write_json_compact(path: Path, array: np.ndarray, decimals: int = JSON_DECIMALS) -> None:
    with naming_path(path), atomic_open(path, "w") as handle:
        json.dump(np.round(np.asarray(array, np.float64), decimals).tolist(), handle, separators=(",", ":"))


class HandSetWriter(SetWriter):
    """FreiHAND layout + side files (see the module docstring)."""

    keys = HAND_KEYS

    def image_path(self, split: str, index: int) -> Path:
        _check_split(split)
        return self.set_dir / FREIHAND_PREFIX[split] / "rgb" / f"{index:08d}.jpg"

    def merge(self, split: str, num_shards: int) -> List[Path]:
        data = self.read_shards(split, num_shards)
        prefix = self.set_dir / FREIHAND_PREFIX[split]
        paths = []
        for key, value in (("K", data["K"]), ("xyz", data["xyz"]), ("verts", data["verts"]),
                           ("mano", data["mano"][:, None, :]), ("scale", data["scale"])):
            path = Path(f"{prefix}_{key}.json")
            _write_json_compact(path, value)
            paths.append(path)
        side = Path(f"{prefix}_side.json")
        with naming_path(side), atomic_open(side, "w") as handle:
            json.dump(["left" if v else "right" for v in data["is_left"]], handle)
        extra = Path(f"{prefix}_extra.npz")
        with naming_path(extra):
            save_npz(extra, rotmat=data["rotmat"].astype(np.float32), transl=data["transl"],
                     is_left=data["is_left"].astype(bool), img_size=data["img_size"])
        return paths + [side, extra]
