"""Detected keypoints drawn on the demo's overlays: a skeleton through the keypoints the fit and the 2D error use
(confidence ≥ the threshold), small grey rings for the ignored low-confidence ones."""
from __future__ import annotations

from typing import Dict, List, Tuple

import cv2
import numpy as np

from hmr.body.joint_sets import get_joint_set

_BODY_CHAINS = (("r_ear", "r_eye", "nose", "l_eye", "l_ear"), ("nose", "neck", "mid_hip"),
                ("r_wrist", "r_elbow", "r_shoulder", "neck", "l_shoulder", "l_elbow", "l_wrist"),
                ("r_big_toe", "r_ankle", "r_knee", "r_hip", "mid_hip", "l_hip", "l_knee", "l_ankle", "l_big_toe"),
                ("r_ankle", "r_heel"), ("l_ankle", "l_heel"))
_HAND_CHAINS = tuple(("wrist",) + tuple(f"{finger}{i}" for i in range(1, 5))
                     for finger in ("thumb", "index", "middle", "ring", "pinky"))
CHAINS = {"openpose25": _BODY_CHAINS, "coco18": _BODY_CHAINS[:4], "freihand21": _HAND_CHAINS}
COLORS = {"left": (255, 120, 40), "right": (40, 150, 255), "centre": (40, 220, 80)}  # RGB


def skeleton_edges(joint_set: str) -> List[Tuple[int, int]]:
    """Index pairs to connect for ``joint_set`` (none for sets without a drawing)."""
    index: Dict[str, int] = {n: i for i, n in enumerate(get_joint_set(joint_set).names)}
    edges = []
    for chain in CHAINS.get(joint_set, ()):
        for a, b in zip(chain[:-1], chain[1:]):
            if a in index and b in index:
                edges.append((index[a], index[b]))
    return edges


def _side_color(name: str) -> Tuple[int, int, int]:
    if name.startswith("l_"):
        return COLORS["left"]
    if name.startswith("r_"):
        return COLORS["right"]
    return COLORS["centre"]


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, joint_set: str, min_confidence: float,
                   scale: float = 1.0) -> np.ndarray:
    """``image`` (uint8 RGB, drawn in place and returned) with ``keypoints`` (K, 3) = x, y, confidence in full-image
    pixels, scaled by ``scale`` (the overlay's resize factor). Person's left orange, right blue, midline green."""
    names = get_joint_set(joint_set).names
    pts = keypoints[:, :2] * scale
    conf = keypoints[:, 2]
    used = (conf >= min_confidence) & np.isfinite(pts).all(axis=1)
    size = max(1, round(max(image.shape[:2]) / 300))
    to_px = lambda p: (int(round(p[0])), int(round(p[1])))  # noqa: E731
    for a, b in skeleton_edges(joint_set):
        if used[a] and used[b]:
            cv2.line(image, to_px(pts[a]), to_px(pts[b]), (255, 255, 255), size + 1, cv2.LINE_AA)
            cv2.line(image, to_px(pts[a]), to_px(pts[b]), _side_color(names[b]), size, cv2.LINE_AA)
    for k in range(len(pts)):
        if conf[k] <= 0 or not np.isfinite(pts[k]).all():
            continue
        if used[k]:
            cv2.circle(image, to_px(pts[k]), size + 2, _side_color(names[k]), -1, cv2.LINE_AA)
            cv2.circle(image, to_px(pts[k]), size + 2, (255, 255, 255), 1, cv2.LINE_AA)
        else:
            cv2.circle(image, to_px(pts[k]), size + 1, (150, 150, 150), 1, cv2.LINE_AA)
    return image
