"""Detections and the bbox → crop conversion the demo shares with training.

A detection is a *tight* box ``(x, y, w, h)`` in full-frame pixels (COCO order). Training crops use SPIN/CLIFF
boxes: ``center`` = box centre, ``scale`` = ``expand`` × longest side / 200 with ``expand`` = 1.2 for bodies
(SPIN, :mod:`hmr.data.synthetic.samples`) and 1.5 for hands (the FreiHAND reader's default), so the demo
converts its boxes the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

BBOX_EXPAND = {"body": 1.2, "hand": 1.5}
HAND_SIDES = ("left", "right")
# Joints whose means start and end the alignment vector of MediaPipe's ROI rotation (and of the landmark-feature
# models' crops): hip centre -> shoulder centre for bodies, wrist -> middle-finger MCP for hands.
ALIGNMENT_JOINTS = ((("r_hip", "l_hip"), ("r_shoulder", "l_shoulder")), (("wrist",), ("middle1",)))


@dataclass
class Detection:
    """One person (or hand) box: ``bbox`` (x, y, w, h) pixels, a ``score``, where it came from (``source``) and,
    for hands, the ``side`` (``"left"``/``"right"``; None = the model's own side). Keypoint detectors also give
    ``keypoints`` (K, 3) = x, y (pixels), confidence in the project joint set ``joint_set``
    (:mod:`hmr.body.joint_sets`; confidence 0 where the detector has no such joint)."""

    bbox: Tuple[float, float, float, float]
    score: float = 1.0
    source: str = "unknown"
    side: Optional[str] = None
    extra: Dict[str, object] = field(default_factory=dict)
    keypoints: Optional[np.ndarray] = None
    joint_set: Optional[str] = None

    def __post_init__(self) -> None:
        self.bbox = check_bbox(self.bbox)
        if self.side is not None and self.side not in HAND_SIDES:
            raise ValueError(f"hand side must be one of {HAND_SIDES}, got {self.side!r}")
        if self.keypoints is not None:
            kp = np.asarray(self.keypoints, dtype=np.float64)
            if kp.ndim != 2 or kp.shape[1] != 3 or self.joint_set is None:
                raise ValueError(f"detection keypoints must be (K, 3) = x, y, confidence with a joint_set, got "
                                 f"shape {kp.shape} and joint set {self.joint_set!r}")
            self.keypoints = kp

    def to_json(self) -> Dict[str, object]:
        """Plain-JSON description (bbox rounded to 0.01 px)."""
        out: Dict[str, object] = {"bbox_xywh": [round(float(v), 2) for v in self.bbox],
                                  "score": round(float(self.score), 4), "source": self.source}
        if self.side is not None:
            out["side"] = self.side
        return out


def alignment_vector(detection: Detection) -> Optional[np.ndarray]:
    """The detection's alignment vector (x, y pixels, y down; see :data:`ALIGNMENT_JOINTS`) from its keypoints,
    or None without keypoints, with a joint set lacking those joints, or with any of them unseen (confidence 0:
    outside the image or not detected)."""
    if detection.keypoints is None or detection.joint_set is None:
        return None
    from hmr.body.joint_sets import get_joint_set
    names = get_joint_set(detection.joint_set).names
    for start, end in ALIGNMENT_JOINTS:
        if set(start + end) <= set(names):
            rows = [[detection.keypoints[names.index(n)] for n in group] for group in (start, end)]
            if min(float(k[2]) for group in rows for k in group) <= 0:
                return None
            a, b = (np.mean([k[:2] for k in group], axis=0) for group in rows)
            return None if np.allclose(a, b) else b - a
    return None


def check_bbox(bbox: Sequence[float]) -> Tuple[float, float, float, float]:
    """``bbox`` as four finite floats with positive width and height, else ValueError naming the format."""
    try:
        values = np.asarray(bbox, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        values = np.full(1, np.nan)
    if values.shape != (4,) or not np.all(np.isfinite(values)):
        shown = list(bbox) if isinstance(bbox, (list, tuple, np.ndarray)) else bbox
        raise ValueError(f"a box must be four finite numbers x, y, w, h (pixels), got {shown!r}")
    if values[2] <= 0 or values[3] <= 0:
        raise ValueError(f"a box needs positive width and height (x, y, w, h), got {values.tolist()}")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def overlaps_image(bbox: Sequence[float], height: int, width: int) -> bool:
    """Whether the (x, y, w, h) box covers any part of a ``width`` x ``height`` image."""
    x, y, w, h = check_bbox(bbox)
    return x < width and y < height and x + w > 0 and y + h > 0


def parse_bbox(text: str) -> Tuple[float, float, float, float]:
    """Parse the ``--bbox x,y,w,h`` flag."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        return check_bbox([float(p) for p in parts])
    except ValueError as exc:
        raise ValueError(f"--bbox expects x,y,w,h (four numbers, pixels, positive w and h), got {text!r}: "
                         f"{exc}") from None


def whole_image_box(height: int, width: int) -> Tuple[float, float, float, float]:
    """The full frame as a box (the last-resort detection)."""
    return (0.0, 0.0, float(width), float(height))


def center_scale(bbox: Sequence[float], expand: float) -> Tuple[np.ndarray, float]:
    """(center (2,), scale) of the square training crop around a tight (x, y, w, h) box."""
    x, y, w, h = check_bbox(bbox)
    if expand <= 0:
        raise ValueError(f"bbox expand factor must be positive, got {expand}")
    return np.array([x + w / 2.0, y + h / 2.0]), float(expand * max(w, h) / 200.0)


def box_from_keypoints(keypoints: np.ndarray, min_confidence: float = 0.1,
                       min_points: int = 3) -> Optional[Tuple[float, float, float, float]]:
    """Tight box (x, y, w, h) around keypoints (K, 2|3) with confidence ≥ ``min_confidence``; None if fewer
    than ``min_points`` are confident or they span no area."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be (K, 2) or (K, 3) = x, y[, confidence], got shape {kp.shape}")
    keep = np.isfinite(kp[:, :2]).all(axis=1)
    if kp.shape[1] == 3:
        keep &= kp[:, 2] >= min_confidence
    pts = kp[keep, :2]
    if len(pts) < min_points:
        return None
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if np.any(hi - lo <= 0):
        return None
    return (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))


def mirror_box(bbox: Sequence[float], width: int) -> Tuple[float, float, float, float]:
    """The box in the image mirrored about the principal point's vertical line (x → w − x)."""
    x, y, w, h = check_bbox(bbox)
    return (float(width) - x - w, y, w, h)
