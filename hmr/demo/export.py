"""Demo writers: meshes (.obj/.ply), smplx-named parameters (.npz), overlay PNGs and videos — all atomic — and the
bounded-size view an overlay is drawn on (:func:`overlay_view`).

Parameter files follow smplx's names and shapes, so ``smplx.SMPL(...)(**{k: torch.tensor(f[k]) for k in
("global_orient", "body_pose", "betas", "transl")})`` reproduces the mesh with the same model (hands:
``hand_pose`` holds absolute joint rotations, i.e. ``smplx.MANO(use_pca=False, flat_hand_mean=True)``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from hmr.demo.predictor import PersonPrediction
from hmr.utils.io import atomic_open, save_npz

PathLike = Union[str, Path]


def save_mesh(path: PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh as .obj or .ply (chosen by the suffix), atomically."""
    import trimesh

    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("obj", "ply"):
        raise ValueError(f"mesh files must end in .obj or .ply, got {path}")
    mesh = trimesh.Trimesh(vertices=np.asarray(vertices, np.float64), faces=np.asarray(faces), process=False)
    data = mesh.export(file_type=suffix)
    with atomic_open(path, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def parameter_arrays(person: PersonPrediction, kind: str) -> Dict[str, np.ndarray]:
    """smplx-named parameters: ``global_orient`` (1, 3) and ``body_pose`` (1, 69) / ``hand_pose`` (1, 45) as
    axis-angle, the same as rotation matrices under ``*_rotmat`` ((1, 1, 3, 3) / (1, J−1, 3, 3)),
    ``betas`` (1, B), ``transl`` (1, 3) in the full-frame camera."""
    pose_key = "body_pose" if kind == "body" else "hand_pose"
    rot, aa = person.rotmats, person.axis_angle
    return {
        "global_orient": aa[None, 0], "global_orient_rotmat": rot[None, 0:1],
        pose_key: aa[None, 1:].reshape(1, -1), f"{pose_key}_rotmat": rot[None, 1:],
        "betas": person.betas[None], "transl": person.transl[None],
    }


def save_params(path: PathLike, person: PersonPrediction, kind: str, meta: Dict[str, object]) -> None:
    """One person's parameters + camera + box (``meta``: focal_length, bbox_xywh, center, scale, …) as .npz."""
    arrays = parameter_arrays(person, kind)
    arrays.update(vertices=person.vertices, keypoints_2d=person.keypoints_2d, K=person.K,
                  body_model=np.array(person.body_model), mirrored=np.array(person.mirrored))
    arrays.update({k: np.asarray(v) for k, v in meta.items()})
    save_npz(path, **arrays)


def stack_params(people: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Concatenate per-person dicts whose arrays all have a leading dimension of 1 (one row per person); keys
    missing from some rows (e.g. keypoints of a frame whose boxes came without them) are left out."""
    if not people:
        return {}
    keys = [k for k in people[0] if all(k in p for p in people[1:])]
    for k in keys:
        v = people[0][k]
        if np.asarray(v).ndim == 0 or np.asarray(v).shape[0] != 1:
            raise ValueError(f"stack_params: {k!r} must have a leading dimension of 1, got {np.shape(v)}")
    return {k: np.concatenate([np.asarray(p[k]) for p in people]) for k in keys}


class VideoWriter:
    """An RGB frame sequence written as a video (mp4v in .mp4, MJPG in .avi); the file appears only on
    :meth:`close` (written under a temporary name, then renamed)."""

    def __init__(self, path: PathLike, fps: float) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.writer: Optional[cv2.VideoWriter] = None
        self.size: Optional[tuple] = None
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame (every frame must have the first frame's size)."""
        h, w = frame.shape[:2]
        if self.writer is None:
            codec = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*codec), self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"OpenCV cannot write video {self.path} with codec {codec}")
            self.size = (h, w)
        if (h, w) != self.size:
            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.count += 1

    def close(self) -> bool:
        """Finish the file; returns False (and writes nothing) when no frame was written."""
        if self.writer is not None:
            self.writer.release()
            os.replace(self.tmp, self.path)
            return True
        self.tmp.unlink(missing_ok=True)
        return False


def overlay_view(image: np.ndarray, K: np.ndarray, max_side: int) -> Tuple[np.ndarray, np.ndarray, float]:
    """(image, K, scale) to draw an overlay with: the image scaled down so its longer side is at most
    ``max_side`` and the camera that goes with it (integer pixel centres: u' = (u + 0.5)·s − 0.5), or the
    inputs unchanged (scale 1) when the image is small enough."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, K, 1.0
    scale = max_side / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    sx, sy = new_w / w, new_h / h
    K_small = np.array(K, dtype=np.float64)
    K_small[0, :2] *= sx
    K_small[1, 1] *= sy
    K_small[0, 2] = (K_small[0, 2] + 0.5) * sx - 0.5
    K_small[1, 2] = (K_small[1, 2] + 0.5) * sy - 0.5
    return small, K_small.astype(np.asarray(K).dtype), scale
