"""Contact sheet: random samples of a written set with their 2D keypoints drawn on, so labels can be checked by
eye. It reads the *stored* files (npz/json + JPEGs), so it checks what a loader will see."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from hmr.body import joint_sets as js
from hmr.data.synthetic.writers import FREIHAND_PREFIX
from hmr.utils.io import atomic_open

CELL = 192
LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR = (60, 120, 255), (255, 80, 60), (60, 220, 60)  # RGB
_SPIN_BONES = (("r_ankle", "r_knee"), ("r_knee", "r_hip"), ("l_ankle", "l_knee"), ("l_knee", "l_hip"),
               ("r_hip", "l_hip"), ("r_wrist", "r_elbow"), ("r_elbow", "r_shoulder"), ("l_wrist", "l_elbow"),
               ("l_elbow", "l_shoulder"), ("r_shoulder", "l_shoulder"), ("neck_lsp", "head_top_lsp"),
               ("thorax_mpii", "pelvis_mpii"))
_FINGER_COLORS = ((255, 80, 60), (255, 200, 40), (60, 220, 60), (60, 160, 255), (200, 80, 255))


def _side_color(name: str) -> Tuple[int, int, int]:
    return LEFT_COLOR if name.startswith("l_") else RIGHT_COLOR if name.startswith("r_") else CENTER_COLOR


def draw_body_keypoints(image: np.ndarray, part: np.ndarray) -> np.ndarray:
    """SPIN-24 keypoints (24, 3) with visibility drawn on a copy of an RGB image (left blue, right red)."""
    out = image.copy()
    names = js.SPIN_24.names
    r = max(1, round(max(image.shape[:2]) / 128))
    for a, b in _SPIN_BONES:
        i, j = names.index(a), names.index(b)
        if part[i, 2] > 0 and part[j, 2] > 0:
            cv2.line(out, _pt(part[i]), _pt(part[j]), _side_color(a), r, cv2.LINE_AA)
    for k, name in enumerate(names):
        if part[k, 2] > 0:
            cv2.circle(out, _pt(part[k]), r + 1, _side_color(name), -1, cv2.LINE_AA)
    return out


def draw_hand_keypoints(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """FreiHAND-21 keypoints (21, 2) drawn on a copy of an RGB image, one colour per finger."""
    out = image.copy()
    r = max(1, round(max(image.shape[:2]) / 128))
    for f in range(5):
        chain = [0] + [1 + 4 * f + k for k in range(4)]
        for a, b in zip(chain[:-1], chain[1:]):
            cv2.line(out, _pt(uv[a]), _pt(uv[b]), _FINGER_COLORS[f], r, cv2.LINE_AA)
    for k in range(21):
        cv2.circle(out, _pt(uv[k]), r + 1, _FINGER_COLORS[max(0, (k - 1) // 4)], -1, cv2.LINE_AA)
    return out


def _pt(p: np.ndarray) -> Tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _letterbox(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = size / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    cell = np.full((size, size, 3), 32, np.uint8)
    y0, x0 = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    cell[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return cell


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return bgr[..., ::-1]


def annotated_samples(kind: str, set_dir: Path, split: str, indices: Sequence[int]) -> List[np.ndarray]:
    """Stored images of ``indices`` with their stored keypoints drawn on."""
    set_dir = Path(set_dir)
    out = []
    if kind == "body":
        with np.load(set_dir / f"{split}.npz", allow_pickle=False) as npz:
            names, parts = npz["imgname"], npz["part"]
        for i in indices:
            out.append(draw_body_keypoints(_read_rgb(set_dir / str(names[i])), parts[i]))
    elif kind == "hand":
        prefix = FREIHAND_PREFIX[split]
        K = np.asarray(json.loads((set_dir / f"{prefix}_K.json").read_text()))
        xyz = np.asarray(json.loads((set_dir / f"{prefix}_xyz.json").read_text()))
        for i in indices:
            uvw = xyz[i] @ K[i].T
            out.append(draw_hand_keypoints(_read_rgb(set_dir / prefix / "rgb" / f"{i:08d}.jpg"),
                                           uvw[:, :2] / uvw[:, 2:3]))
    else:
        raise ValueError(f"kind must be 'body' or 'hand', got {kind!r}")
    return out


def count_samples(kind: str, set_dir: Path, split: str) -> int:
    if kind == "body":
        with np.load(Path(set_dir) / f"{split}.npz", allow_pickle=False) as npz:
            return len(npz["imgname"])
    return len(json.loads((Path(set_dir) / f"{FREIHAND_PREFIX[split]}_K.json").read_text()))


def write_contact_sheet(kind: str, set_dir: Path, split: str, path: Path, rows: int = 4, cols: int = 6,
                        seed: int = 0) -> Path:
    """A rows x cols grid of random annotated samples of ``split``, saved as PNG at ``path``."""
    n = count_samples(kind, set_dir, split)
    if n == 0:
        raise ValueError(f"{set_dir}: split {split!r} is empty; nothing to put on a contact sheet")
    rng = np.random.default_rng(seed)
    indices = sorted(rng.choice(n, size=min(n, rows * cols), replace=False).tolist())
    cells = [_letterbox(img, CELL) for img in annotated_samples(kind, set_dir, split, indices)]
    cells += [np.full((CELL, CELL, 3), 32, np.uint8)] * (rows * cols - len(cells))
    grid = np.concatenate([np.concatenate(cells[r * cols:(r + 1) * cols], axis=1) for r in range(rows)], axis=0)
    ok, buf = cv2.imencode(".png", grid[..., ::-1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    with atomic_open(path, "wb") as handle:
        handle.write(buf.tobytes())
    return Path(path)
