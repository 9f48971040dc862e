"""Identities across video frames: detections matched to tracks by an optimal assignment.

Each track predicts its box in the next frame with a constant-velocity model (the velocity of its box centre,
smoothed exponentially); the cost of a (detection, track) pair mixes ``1 − IoU`` with the predicted box and, where
both carry 2D keypoints, their mean distance over the confidently seen joints divided by the box diagonal.
``scipy.optimize.linear_sum_assignment`` solves the frame's assignment; pairs costlier than ``max_cost`` (or of
different hand sides) stay unmatched. An unmatched detection starts a new track (ids count up from 1); a track
survives ``max_misses`` frames without a detection, then ends.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Protocol, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

_FORBIDDEN = 1e6


class Detection(Protocol):
    """What the tracker reads of a detection (:class:`hmr.demo.boxes.Detection` is one): an (x, y, w, h) box,
    optional (K, 3) keypoints (x, y, confidence) and an optional hand side."""

    bbox: Sequence[float]
    keypoints: Optional[np.ndarray]
    side: Optional[str]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class TrackerConfig:
    """Matching settings: ``max_cost`` gates a match, ``keypoint_weight`` mixes the keypoint term into the cost,
    ``min_keypoint_confidence`` selects the joints it uses, ``velocity_smoothing`` in [0, 1) damps the velocity."""

    max_cost: float = 0.8
    max_misses: int = 30   # frames a lost track waits (ByteTrack keeps lost tracks 30 frames too)
    keypoint_weight: float = 0.5
    min_keypoint_confidence: float = 0.3
    velocity_smoothing: float = 0.5


@dataclass
class Track:
    """One identity: its last box and keypoints, box-centre velocity (pixels/frame) and bookkeeping."""

    track_id: int
    bbox: np.ndarray
    keypoints: Optional[np.ndarray]
    side: Optional[str]
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    misses: int = 0
    hits: int = 1
    last_frame: int = 0

    def predicted_box(self, frames_ahead: int = 1) -> np.ndarray:
        box = self.bbox.copy()
        box[:2] += self.velocity * frames_ahead
        return box


class Tracker:
    """Online multi-person (or multi-hand) tracker; :meth:`update` once per frame, in order."""

    def __init__(self, config: Optional[TrackerConfig] = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: List[Track] = []
        self.next_id = 1
        self.frame = -1

    def _keypoint_cost(self, det: Detection, track: Track, diagonal: float, frames: int) -> Optional[float]:
        if det.keypoints is None or track.keypoints is None or det.keypoints.shape != track.keypoints.shape:
            return None
        conf = self.config.min_keypoint_confidence
        seen = (det.keypoints[:, 2] >= conf) & (track.keypoints[:, 2] >= conf)
        if seen.sum() < 3:
            return None
        predicted = track.keypoints[seen, :2] + track.velocity[None] * frames
        dist = np.linalg.norm(det.keypoints[seen, :2] - predicted, axis=1).mean()
        return float(min(dist / max(diagonal, 1e-6), 1.0))

    def cost_matrix(self, detections: Sequence[Detection], frame: int) -> np.ndarray:
        """(detections, tracks) matching costs at ``frame``; :data:`_FORBIDDEN` where sides differ."""
        cost = np.full((len(detections), len(self.tracks)), _FORBIDDEN)
        w = self.config.keypoint_weight
        for i, det in enumerate(detections):
            box = np.asarray(det.bbox, dtype=np.float64)
            diagonal = float(np.hypot(box[2], box[3]))
            for j, track in enumerate(self.tracks):
                if det.side is not None and track.side is not None and det.side != track.side:
                    continue
                c = 1.0 - box_iou(box, track.predicted_box(frame - track.last_frame))
                kp = self._keypoint_cost(det, track, diagonal, frame - track.last_frame)
                cost[i, j] = c if kp is None else (1.0 - w) * c + w * kp
        return cost

    def update(self, detections: Sequence[Detection], frame: Optional[int] = None) -> List[int]:
        """The track id of every detection of this frame (same order)."""
        frame = self.frame + 1 if frame is None else int(frame)
        ahead = max(1, frame - self.frame) if self.frame >= 0 else 1
        self.frame = frame
        ids: List[Optional[int]] = [None] * len(detections)
        matched_tracks = set()
        if detections and self.tracks:
            cost = self.cost_matrix(detections, frame)
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] <= self.config.max_cost:
                    self._refresh(self.tracks[j], detections[i], frame)
                    ids[i] = self.tracks[j].track_id
                    matched_tracks.add(j)
        for j, track in enumerate(self.tracks):
            if j not in matched_tracks:
                track.misses += ahead
        self.tracks = [t for t in self.tracks if t.misses <= self.config.max_misses]
        for i, det in enumerate(detections):
            if ids[i] is None:
                track = Track(self.next_id, np.asarray(det.bbox, dtype=np.float64), _keypoints(det), det.side,
                              last_frame=frame)
                self.tracks.append(track)
                ids[i] = track.track_id
                self.next_id += 1
        return [int(i) for i in ids]

    def _refresh(self, track: Track, det: Detection, frame: int) -> None:
        box = np.asarray(det.bbox, dtype=np.float64)
        step = (box[:2] + box[2:] / 2 - track.bbox[:2] - track.bbox[2:] / 2) / max(frame - track.last_frame, 1)
        a = self.config.velocity_smoothing
        track.velocity = a * track.velocity + (1 - a) * step if track.hits > 1 else step
        track.bbox, track.keypoints = box, _keypoints(det)
        track.misses, track.hits, track.last_frame = 0, track.hits + 1, frame


def _keypoints(det: Detection) -> Optional[np.ndarray]:
    return None if det.keypoints is None else np.asarray(det.keypoints, dtype=np.float64).copy()
