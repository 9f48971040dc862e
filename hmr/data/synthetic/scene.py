"""Camera and framing for synthetic samples: intrinsics from a field of view, viewpoints, and placing a posed
mesh so that it fills a chosen share of the frame (optionally truncated by the image border).

Camera frame: OpenCV (x right, y down, z forward). Body models are Y-up and face +Z, so an upright person seen
from the front needs a 180° turn about x (``UPRIGHT_FACING_CAMERA``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

from hmr.data.synthetic.pose_prior import rodrigues

UPRIGHT_FACING_CAMERA = np.diag([1.0, -1.0, -1.0])  # model (Y up, facing +Z) -> camera (y down, facing -z)


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> np.ndarray:
    """K (3, 3) with square pixels, the field of view ``fov_deg`` across the longer image side, principal point at
    the image centre (w/2, h/2) as CLIFF assumes."""
    if not 1.0 <= fov_deg <= 170.0:
        raise ValueError(f"field of view must be in [1, 170] degrees, got {fov_deg}")
    focal = 0.5 * max(width, height) / np.tan(np.deg2rad(fov_deg) / 2)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation uniformly distributed on SO(3) (normalised Gaussian quaternion, XYZW)."""
    x, y, z, w = rng.normal(size=4) / 1.0
    n = np.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def body_view_rotation(rng: np.random.Generator, full_sphere_share: float) -> np.ndarray:
    """Global orientation of a body in the camera frame: any azimuth, elevation -30°..60° (camera below/above)
    and a small roll — or, for ``full_sphere_share`` of samples, a uniformly random rotation."""
    if rng.random() < full_sphere_share:
        return random_rotation(rng)
    azimuth, elevation, roll = rng.uniform(0, 360), rng.uniform(-30, 60), rng.normal(0, 8)
    yaw = rodrigues(np.array([0.0, 1.0, 0.0]), np.array(azimuth))
    pitch = rodrigues(np.array([1.0, 0.0, 0.0]), np.array(-elevation))  # camera above: tilt the top away
    tilt = rodrigues(np.array([0.0, 0.0, 1.0]), np.array(roll))
    return tilt @ pitch @ UPRIGHT_FACING_CAMERA @ yaw


def projected_box(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[u_min, v_min, u_max, v_max] of the projection of (V, 3) camera-frame points (all with z > 0)."""
    uvw = points @ K.T
    uv = uvw[:, :2] / uvw[:, 2:3]
    return np.concatenate([uv.min(0), uv.max(0)])


def _fibonacci_directions(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * i / n)
    azimuth = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


_DIRECTIONS = _fibonacci_directions(96)


def extreme_points(points: np.ndarray) -> np.ndarray:
    """The points that are farthest along 96 evenly spread directions: a cheap superset of most convex-hull
    vertices. Projected boxes (whose extremes lie on the hull) computed from them are within a fraction of a
    pixel of the full set's, at a fraction of the cost."""
    idx = np.unique(np.argmax(_DIRECTIONS @ points.T, axis=1))  # (96, V): row-wise argmax is fast
    return points[idx]


@dataclass(frozen=True)
class Framing:
    """Where a mesh lands in the frame: the translation applied to it, the fill and whether it is cut."""

    transl: np.ndarray
    fill: float
    truncated: bool


def frame_mesh(points: np.ndarray, K: np.ndarray, width: int, height: int, fill: float,
               rng: np.random.Generator, truncate: bool, max_cut: float = 0.35) -> Framing:
    """Translate ``points`` (V, 3, posed at the origin) so that the projected box covers ``fill`` of the image
    (max of width and height ratios) and lies inside the image; with ``truncate`` the box is pushed past one
    border by up to ``max_cut`` of its size. Returns the translation to add to the mesh."""
    if not 0.0 < fill <= 1.5:
        raise ValueError(f"fill must be in (0, 1.5], got {fill}")
    points = extreme_points(np.asarray(points, np.float64))
    center = 0.5 * (points.min(0) + points.max(0))
    extent = points.max(0) - points.min(0)
    focal = K[0, 0]
    depth = max(focal * extent[0] / (fill * width), focal * extent[1] / (fill * height))
    depth = max(depth, extent[2] + 0.05)  # keep the camera outside the mesh's depth range
    t = np.array([0.0, 0.0, depth]) - center
    for _ in range(3):  # perspective makes the fill depend on depth: refine the depth, then re-centre
        box = projected_box(points + t, K)
        actual = max((box[2] - box[0]) / width, (box[3] - box[1]) / height)
        new_depth = max(t[2] + center[2], 1e-3) * actual / fill
        t[2] = max(new_depth, extent[2] + 0.05) - center[2]
    box = projected_box(points + t, K)
    size = box[2:] - box[:2]
    lo = size / 2
    hi = np.array([width, height]) - size / 2
    target = np.where(lo <= hi, rng.uniform(np.minimum(lo, hi), np.maximum(lo, hi)), np.array([width, height]) / 2)
    if truncate:
        axis = rng.integers(2)
        sign = rng.choice([-1.0, 1.0])
        cut = rng.uniform(0.1, max_cut) * size[axis]
        edge = lo[axis] if sign < 0 else hi[axis]
        target[axis] = edge + sign * cut
    z = t[2] + center[2]
    for _ in range(6):  # a lateral shift changes the perspective box a little: iterate
        shift = target - (box[:2] + box[2:]) / 2
        t[:2] += shift * z / np.array([K[0, 0], K[1, 1]])
        box = projected_box(points + t, K)
    return Framing(transl=t, fill=float(fill), truncated=bool(truncate))


def choose_size(rng: np.random.Generator, sizes: Sequence[Sequence[int]]) -> Tuple[int, int]:
    """One (height, width) from the configured list."""
    if len(sizes) == 0:
        raise ValueError("image_sizes must list at least one [height, width]")
    h, w = sizes[rng.integers(len(sizes))]
    return int(h), int(w)
