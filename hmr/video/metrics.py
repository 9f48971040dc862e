"""Video metrics: acceleration error of 3D joints (as in HMMR / VIBE) and CLEAR-MOT tracking counts.

Acceleration error: mean over frames ``1..T-2`` and joints of ``‖(p[t-1] − 2p[t] + p[t+1]) − (g[t-1] − 2g[t] +
g[t+1])‖`` — millimetres per frame² for joints in millimetres; computed on root-aligned joints as MPJPE is.

Tracking (Bernardin & Stiefelhagen 2008, CLEAR MOT): per frame, ground-truth people and predicted tracks are
matched by box IoU ≥ ``min_iou`` (an optimal assignment, keeping last frame's pairs where they still qualify);
a ground-truth person whose matched track differs from the one it last matched is an identity switch;
MOTA = 1 − (misses + false positives + switches) / ground-truth boxes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from hmr.video.tracking import box_iou

Boxes = Mapping[int, Sequence[float]]   # id -> (x, y, w, h)


def acceleration_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean acceleration difference of (T, K, 3) joint sequences (units of the input per frame²)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or len(pred) < 3:
        raise ValueError(f"need two (T >= 3, K, 3) sequences of one shape, got {pred.shape} and {gt.shape}")
    accel = lambda x: x[:-2] - 2 * x[1:-1] + x[2:]  # noqa: E731
    return float(np.linalg.norm(accel(pred) - accel(gt), axis=-1).mean())


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error of (..., K, 3) joints (already aligned), in the input's units."""
    return float(np.linalg.norm(np.asarray(pred) - np.asarray(gt), axis=-1).mean())


@dataclass
class MotCounts:
    """CLEAR-MOT counts over a sequence."""

    gt_boxes: int = 0
    matches: int = 0
    misses: int = 0
    false_positives: int = 0
    id_switches: int = 0

    @property
    def mota(self) -> float:
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / max(self.gt_boxes, 1)

    def as_dict(self) -> Dict[str, float]:
        return {**asdict(self), "mota": round(self.mota, 4)}


def clear_mot(gt_frames: Sequence[Boxes], pred_frames: Sequence[Boxes], min_iou: float = 0.5,
              ignored_frames: Optional[Sequence[Boxes]] = None) -> Tuple[MotCounts, Dict[int, Dict[int, int]]]:
    """Counts over aligned frame lists (``gt_frames[t]``: person id -> box; ``pred_frames[t]``: track id -> box),
    and for each ground-truth person how many frames each track covered it. ``ignored_frames[t]``: people too
    little visible to be required (as MOT benchmarks' "don't care" boxes): predictions on them are not false
    positives, and not finding them is not a miss."""
    counts = MotCounts()
    last: Dict[int, int] = {}            # gt id -> track id it last matched
    coverage: Dict[int, Dict[int, int]] = {}
    ignored_frames = ignored_frames if ignored_frames is not None else [{}] * len(gt_frames)
    for gt, pred, ignored in zip(gt_frames, pred_frames, ignored_frames):
        gt_ids, pred_ids = list(gt), list(pred)
        counts.gt_boxes += len(gt_ids)
        pairs: Dict[int, int] = {}
        for g in gt_ids:   # keep last frame's correspondence where it still qualifies (CLEAR MOT step 1)
            p = last.get(g)
            if p in pred and p not in pairs.values() and box_iou(gt[g], pred[p]) >= min_iou:
                pairs[g] = p
        free_g = [g for g in gt_ids if g not in pairs]
        free_p = [p for p in pred_ids if p not in pairs.values()]
        if free_g and free_p:
            iou = np.array([[box_iou(gt[g], pred[p]) for p in free_p] for g in free_g])
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= min_iou:
                    pairs[free_g[r]] = free_p[c]
        for g, p in pairs.items():
            if g in last and last[g] != p:
                counts.id_switches += 1
            last[g] = p
            coverage.setdefault(g, {}).setdefault(p, 0)
            coverage[g][p] += 1
        counts.matches += len(pairs)
        counts.misses += len(gt_ids) - len(pairs)
        unmatched = [p for p in pred_ids if p not in pairs.values()]
        counts.false_positives += sum(not any(box_iou(pred[p], box) >= min_iou for box in ignored.values())
                                      for p in unmatched)
    return counts, coverage
