"""Looks of a synthetic sample: textured backgrounds, lighting, skin/cloth colours and occluding objects.

Everything draws from a ``numpy.random.Generator`` only, so a sample is a pure function of its seed.
"""
from __future__ import annotations

import colorsys
from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import trimesh

from hmr.data.synthetic.scene import random_rotation
from hmr.vis.render import Light, Mesh

# Skin tones (RGB, 0..1), light to dark; per-sample jitter is added.
SKIN_TONES = np.array([
    [0.96, 0.80, 0.69], [0.92, 0.74, 0.60], [0.87, 0.67, 0.52], [0.78, 0.57, 0.42],
    [0.66, 0.46, 0.32], [0.53, 0.36, 0.24], [0.40, 0.27, 0.18], [0.30, 0.20, 0.14],
])
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def random_color(rng: np.random.Generator, sat: Tuple[float, float] = (0.1, 0.9),
                 val: Tuple[float, float] = (0.15, 0.95)) -> np.ndarray:
    """A random RGB colour in [0, 1] from hue/saturation/value ranges."""
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)))


def skin_color(rng: np.random.Generator) -> np.ndarray:
    base = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    return np.clip(base * rng.uniform(0.9, 1.1) + rng.normal(0, 0.02, 3), 0, 1)


# ---------------------------------------------------------------------------------------------- backgrounds
def _value_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 3) -> np.ndarray:
    """Multi-octave value noise in [0, 1], (h, w, 3): random grids upsampled bicubically and summed."""
    out = np.zeros((h, w, 3), np.float32)
    total = 0.0
    cells = int(rng.integers(2, 6))
    for octave in range(octaves):
        g = cells * 2 ** octave
        grid = rng.random((g + 1, g + 1, 3)).astype(np.float32)
        amp = 0.5 ** octave
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
    return np.clip(out / total, 0, 1)


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a, b = random_color(rng), random_color(rng)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xs / w + np.sin(angle) * ys / h)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    return (a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]).astype(np.float32)


def _draw_shapes(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Filled rectangles, circles, polygons and thick lines in random colours (in place, uint8 RGB)."""
    h, w = img.shape[:2]
    for _ in range(count):
        color = tuple(int(c) for c in (random_color(rng) * 255))
        kind = rng.integers(4)
        p = (rng.random((4, 2)) * [w, h]).astype(np.int32)
        if kind == 0:
            cv2.rectangle(img, tuple(map(int, p[0])), tuple(map(int, p[1])), color, -1)
        elif kind == 1:
            cv2.circle(img, tuple(map(int, p[0])), int(rng.uniform(0.03, 0.3) * max(h, w)), color, -1)
        elif kind == 2:
            cv2.fillPoly(img, [p[:int(rng.integers(3, 5))]], color)
        else:
            cv2.line(img, tuple(map(int, p[0])), tuple(map(int, p[1])), color, int(rng.integers(1, 12)))


def _stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a, b = random_color(rng), random_color(rng)
    period = rng.uniform(6, 60)
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (np.cos(angle) * xs + np.sin(angle) * ys) / period
    if rng.random() < 0.5:  # checkerboard
        phase = np.floor(xs / period) + np.floor(ys / period)
    t = (np.floor(phase) % 2)[..., None]
    return (a * (1 - t) + b * t).astype(np.float32)


@lru_cache(maxsize=4)
def list_images(folder: str) -> Tuple[str, ...]:
    """Sorted image files under ``folder`` (recursive); raises if there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"background folder not found: {root}")
    files = tuple(sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"background folder {root} holds no {IMAGE_SUFFIXES} images")
    return files


def _user_image(rng: np.random.Generator, h: int, w: int, files: Sequence[str]) -> Optional[np.ndarray]:
    path = files[rng.integers(len(files))]
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    ih, iw = bgr.shape[:2]
    scale = max(h / ih, w / iw) * rng.uniform(1.0, 1.6)
    size = (max(w, int(round(iw * scale))), max(h, int(round(ih * scale))))
    bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    y0, x0 = rng.integers(bgr.shape[0] - h + 1), rng.integers(bgr.shape[1] - w + 1)
    crop = bgr[y0:y0 + h, x0:x0 + w, ::-1]
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def random_background(rng: np.random.Generator, height: int, width: int,
                      image_dir: Optional[str] = None, image_share: float = 0.5) -> np.ndarray:
    """A textured uint8 RGB background: noise, gradient, stripes/checker, with random shapes on top — or, with
    ``image_dir``, a random crop of a user image for ``image_share`` of the samples."""
    if image_dir and rng.random() < image_share:
        img = _user_image(rng, height, width, list_images(image_dir))
        if img is not None:
            return img
    kind = rng.integers(3)
    if kind == 0:
        base = _value_noise(rng, height, width)
        base = base * rng.uniform(0.3, 1.0) + random_color(rng) * rng.uniform(0.0, 0.6)
    elif kind == 1:
        base = _gradient(rng, height, width)
    else:
        base = _stripes(rng, height, width)
    if kind != 0 and rng.random() < 0.5:  # texture on top of flat patterns
        base = base * (0.75 + 0.5 * _value_noise(rng, height, width, octaves=2))
    img = np.ascontiguousarray((np.clip(base, 0, 1) * 255).astype(np.uint8))
    _draw_shapes(rng, img, int(rng.integers(0, 14)))
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 3.0))
    return img


# ---------------------------------------------------------------------------------------------- lights, colours
def random_light(rng: np.random.Generator) -> Light:
    """A directional light from the camera's side of the scene, random tint, strength and ambient term."""
    d = rng.normal(size=3)
    d[2] = -abs(d[2]) - 0.3  # towards the camera (surfaces facing the camera get lit)
    tint = np.clip(1.0 + rng.normal(0, 0.08, 3), 0.75, 1.0) * rng.uniform(0.55, 0.95)
    return Light(direction=tuple(d), color=tuple(tint), ambient=float(rng.uniform(0.2, 0.5)),
                 shininess=float(rng.uniform(8, 64)))


# SMPL-24 joints whose skinned vertices get each material (a vertex takes the joint with the largest weight; the
# others - neck, head, wrists, hands - are skin).
_SHIRT_JOINTS = (3, 6, 9, 13, 14, 16, 17)  # spine, collars, upper arms
_FOREARM_JOINTS = (18, 19)
_PANTS_JOINTS = (0, 1, 2)  # pelvis, thighs
_SHIN_JOINTS = (4, 5)
_SHOE_JOINTS = (7, 8, 10, 11)
# Materials of :func:`body_regions`, one integer per vertex.
SKIN, SHIRT, FOREARM, PANTS, SHIN, SHOES, HAIR, EYES, BROWS, LIPS = range(10)
HAIR_COLORS = np.array([[0.05, 0.04, 0.03], [0.18, 0.11, 0.06], [0.35, 0.22, 0.12], [0.45, 0.20, 0.10],
                        [0.80, 0.66, 0.42], [0.60, 0.58, 0.55]])  # black, dark/mid brown, auburn, blond, grey


def body_regions(rest_vertices: np.ndarray, dominant_joint: np.ndarray) -> np.ndarray:
    """Per-vertex material (V,) of an SMPL-topology body: clothes by skinning joint, and on the head hair (crown,
    back and sides), eyes, eyebrows and lips placed from the rest-pose nose tip. Without a face and hair a render
    is the same from the front and the back, and a real-photo keypoint network then swaps left and right.
    Offsets (metres, rest pose facing +z, y up) are average adult proportions."""
    labels = np.full(len(dominant_joint), SKIN, np.int64)
    for joints, label in ((_SHIRT_JOINTS, SHIRT), (_FOREARM_JOINTS, FOREARM), (_PANTS_JOINTS, PANTS),
                          (_SHIN_JOINTS, SHIN), (_SHOE_JOINTS, SHOES)):
        labels[np.isin(dominant_joint, joints)] = label
    head = dominant_joint == 15
    if not head.any():
        return labels
    v = np.asarray(rest_vertices, np.float64)
    nose = v[head][np.argmax(v[head, 2])]
    x, y, z = v[:, 0] - nose[0], v[:, 1] - nose[1], v[:, 2] - nose[2]
    front = head & (z > -0.05)
    hair = head & (((y > 0.075) & (z < -0.02)) | (y > 0.095) | ((y > 0.03) & (z < -0.085))
                   | ((z < -0.115) & (y > -0.045)))
    eyes = front & (np.abs(np.abs(x) - 0.033) < 0.013) & (np.abs(y - 0.034) < 0.008)
    brows = front & (np.abs(np.abs(x) - 0.035) < 0.02) & (np.abs(y - 0.056) < 0.005)
    lips = front & (np.abs(x) < 0.022) & (np.abs(y + 0.036) < 0.007)
    for mask, label in ((hair, HAIR), (eyes, EYES), (brows, BROWS), (lips, LIPS)):
        labels[mask] = label
    return labels


def body_colors(rng: np.random.Generator, regions: np.ndarray) -> np.ndarray:
    """Per-vertex RGB (V, 3) for :func:`body_regions`' materials: skin, shirt (short or long sleeves), trousers or
    shorts, shoes, hair (8 % bald), dark eyes and brows, lips; slight speckle."""
    skin, shirt, pants = skin_color(rng), random_color(rng), random_color(rng)
    shoes = random_color(rng, val=(0.05, 0.6))
    palette = np.zeros((10, 3))
    palette[SKIN] = skin
    palette[SHIRT] = shirt
    palette[FOREARM] = shirt if rng.random() < 0.5 else skin
    palette[PANTS] = pants
    palette[SHIN] = pants if rng.random() < 0.7 else skin
    palette[SHOES] = shoes
    hair = HAIR_COLORS[rng.integers(len(HAIR_COLORS))] * rng.uniform(0.8, 1.2)
    bald = rng.random() < 0.08
    palette[HAIR] = skin if bald else hair
    palette[EYES] = skin * rng.uniform(0.15, 0.3)
    palette[BROWS] = skin * 0.5 if bald else hair * 0.8
    palette[LIPS] = skin * np.array([0.85, 0.55, 0.55])
    colors = palette[regions]
    colors = colors * (1.0 + rng.normal(0, 0.03, (len(colors), 1)))
    return np.clip(colors, 0, 1).astype(np.float32)


def hand_colors(rng: np.random.Generator, num_vertices: int) -> np.ndarray:
    """Per-vertex skin RGB (V, 3) with slight speckle."""
    colors = skin_color(rng)[None] * (1.0 + rng.normal(0, 0.03, (num_vertices, 1)))
    return np.clip(colors, 0, 1).astype(np.float32)


# ---------------------------------------------------------------------------------------------- occluders
@lru_cache(maxsize=1)
def _unit_primitives() -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
    """Unit box, sphere and cylinder meshes (vertices, faces), centred at the origin, size ~1."""
    prims = (trimesh.creation.box(extents=(1, 1, 1)), trimesh.creation.icosphere(subdivisions=2, radius=0.5),
             trimesh.creation.cylinder(radius=0.5, height=1.0, sections=24))
    return tuple((np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int64)) for m in prims)


def random_occluders(rng: np.random.Generator, target: np.ndarray, count: int) -> List[Mesh]:
    """``count`` primitives between the camera and the ``target`` points (V, 3), each covering part of the
    target's projected box; sizes are 15–40% of the target's extent."""
    prims = _unit_primitives()
    z_near = float(target[:, 2].min())
    lo, hi = target.min(0), target.max(0)
    extent = float(np.max(hi[:2] - lo[:2]))
    meshes = []
    for _ in range(count):
        verts, faces = prims[rng.integers(len(prims))]
        depth = z_near * rng.uniform(0.55, 0.92)
        scale = extent * rng.uniform(0.15, 0.4) * depth / max(float(target[:, 2].mean()), 1e-6)
        # aim at a random point of the target's box, seen at the occluder's depth
        aim = lo + rng.random(3) * (hi - lo)
        xy = aim[:2] / aim[2] * depth
        stretch = rng.uniform(0.5, 1.5, 3)
        v = (verts * stretch * scale) @ random_rotation(rng).T.astype(np.float32) + np.array([xy[0], xy[1], depth])
        meshes.append(Mesh(v.astype(np.float32), faces, random_color(rng), specular=float(rng.uniform(0, 0.6))))
    return meshes
