"""Keypoint detectors for the demo: BlazePose (people, 33 landmarks) and MediaPipe Hands (hands, 21 landmarks +
handedness) from :mod:`hmr.keypoints`, running in PyTorch on the converted MediaPipe networks.

Each :class:`~hmr.demo.boxes.Detection` they return carries its keypoints in a project joint set
(:data:`BODY_JOINT_SET` / :data:`HAND_JOINT_SET`, mapped by :mod:`hmr.keypoints.mapping`; docs/demo.md lists the
map) with the landmark's confidence: BlazePose's visibility per landmark, the hand network's hand flag for every
hand landmark; landmarks outside the image get confidence 0 (the networks also place out-of-frame joints).
The raw landmarks are kept in ``extra["landmarks"]`` ((33|21, 3) = x, y, confidence).

Boxes: bodies use the box around all 33 landmarks (``box="all"``, default: a half-visible person gets a crop laid
out like the full bodies the regressor was trained on) or around the visible ones (``box="visible"``); hands the
box around the 21 landmarks.

Given boxes (``--bbox``, a detections file without keypoints): :class:`BoxKeypoints` runs BlazePose's landmark
network in square regions around each body box (:data:`BOX_ROI_SCALES` x its longer side, upright; one batch) and
keeps the region whose person flag is highest, so ``--fit`` works there too.

Tracking (videos, :meth:`reset` with ``tracking=True``): as in MediaPipe's video mode, frame t's landmark network
runs on regions derived from frame t−1's landmarks and the person/palm detector runs only when nothing is tracked,
when a tracked person/hand is lost (its landmark flag drops below ``min_presence``) or every ``redetect_every``
frames (to pick up newcomers). A region is kept while the new one stays close to it (centre within
:data:`KEEP_SHIFT`, side within :data:`KEEP_SCALE`, rotation within :data:`KEEP_ROTATION`): regions recomputed on
every frame made the landmarks of a still person wander by 10-30 px (the farthest landmark, often an unseen foot,
moves the region, which moves the landmarks).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from hmr.demo.boxes import Detection

log = logging.getLogger(__name__)

BODY_JOINT_SET = "openpose25"
HAND_JOINT_SET = "freihand21"
NETWORKS_FOR = {"body": ("pose_detection", "pose_landmark_full"),
                "hand": ("palm_detection_full", "hand_landmark_full")}
# body tracking region: half-side = TRACK_RADIUS x the farthest landmark from the hip centre (the detector's own
# region measured 1.00-1.13 x that on astronaut/camera/grace_hopper), then MediaPipe's 1.25 landmark-ROI scale
TRACK_RADIUS = 1.1
BODY_ROI_SCALE = 1.25
HAND_ROI_SCALE, HAND_ROI_SHIFT_Y = 2.0, -0.1  # MediaPipe's hand_landmark_landmarks_to_roi
# landmark region sides / tight body box side; the network's person flag is not monotonic in the region size, so a
# few are tried (1.4 missed fewest synthetic renders; the cameraman's 1.4 region scores 0.32, 1.2 and 1.6 over 0.9)
BOX_ROI_SCALES = (1.2, 1.4, 1.6)
KEEP_SHIFT, KEEP_SCALE, KEEP_ROTATION = 0.05, 0.1, math.radians(10.0)  # x side, relative, radians
HIPS, SHOULDERS = (23, 24), (11, 12)
# MediaPipe's HandLandmarksToRectCalculator: the box of the palm landmarks (wrist, thumb CMC-IP, knuckles and the
# PIP joints), rotated so that wrist -> (middle PIP + mean of index and ring PIP) / 2 points up
HAND_PARTIAL = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
WRIST, INDEX_PIP, MIDDLE_PIP, RING_PIP = 0, 6, 10, 14


def missing_networks(kind: str, weights_dir: Optional[Union[str, Path]] = None) -> Optional[str]:
    """Why the keypoint detector for ``kind`` cannot run here (converted networks missing), or None."""
    from hmr.models.mediapipe import network_path
    missing = [n for n in NETWORKS_FOR[kind] if not network_path(n, weights_dir).is_file()]
    if not missing:
        return None
    return (f"converted MediaPipe networks {', '.join(missing)} not found in "
            f"{network_path(missing[0], weights_dir).parent} (run `bash scripts/setup_env.sh` or "
            "tools/convert_mediapipe.py)")


def _confidence_inside(points: np.ndarray, confidence: np.ndarray, height: int, width: int) -> np.ndarray:
    """``confidence`` with 0 for points outside the image."""
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    return np.where(inside & np.isfinite(points).all(axis=1), confidence, 0.0)


def _mapped(mapped) -> np.ndarray:
    """(K, 3) x, y, confidence (0 where the map has no source) from a :class:`MappedKeypoints`."""
    conf = np.where(mapped.mask, mapped.confidence, 0.0)
    return np.concatenate([mapped.keypoints, conf[:, None]], axis=1)


def _xyxy_to_xywh(box: Sequence[float]):
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0, y0, max(x1 - x0, 1.0), max(y1 - y0, 1.0))


def body_track_roi(keypoints: np.ndarray):
    """The landmark region of the next frame from this frame's 33 BlazePose landmarks: centred on the hip
    centre, rotated so that hips → shoulders points up, half-side :data:`TRACK_RADIUS` x the farthest landmark."""
    from hmr.keypoints.roi import RotatedRect, rotation_from_points
    hip = keypoints[list(HIPS)].mean(axis=0)
    shoulders = keypoints[list(SHOULDERS)].mean(axis=0)
    radius = TRACK_RADIUS * float(np.linalg.norm(keypoints - hip, axis=1).max())
    side = 2.0 * radius * BODY_ROI_SCALE
    return RotatedRect(float(hip[0]), float(hip[1]), side, side, rotation_from_points(hip, shoulders))


def hand_track_roi(keypoints: np.ndarray):
    """The landmark region of the next frame from this frame's 21 hand landmarks, as MediaPipe's video mode
    computes it (:data:`HAND_PARTIAL`; then shifted and scaled by hand_landmark_landmarks_to_roi's constants)."""
    from hmr.keypoints.roi import RotatedRect, rotation_from_points, transform_rect
    fingers = 0.5 * (keypoints[MIDDLE_PIP] + 0.5 * (keypoints[INDEX_PIP] + keypoints[RING_PIP]))
    rotation = rotation_from_points(keypoints[WRIST], fingers)
    c, s = math.cos(rotation), math.sin(rotation)
    R = np.array([[c, -s], [s, c]])
    local = keypoints[list(HAND_PARTIAL)] @ R  # image -> the rectangle's own axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    centre = 0.5 * (lo + hi) @ R.T
    rect = RotatedRect(float(centre[0]), float(centre[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]), rotation)
    return transform_rect(rect, HAND_ROI_SCALE, shift=(0.0, HAND_ROI_SHIFT_Y), square_long=True)


def _keep_close(old, new):
    """``old`` while ``new`` is close to it (see the module docstring), else ``new``."""
    from hmr.keypoints.roi import normalize_radians
    side = max(old.width, old.height)
    close = (math.hypot(new.cx - old.cx, new.cy - old.cy) <= KEEP_SHIFT * side
             and abs(max(new.width, new.height) / side - 1.0) <= KEEP_SCALE
             and abs(normalize_radians(new.rotation - old.rotation)) <= KEEP_ROTATION)
    return old if close else new


class _Tracking:
    """Detector-or-tracker bookkeeping shared by the body and hand detectors."""

    gives_keypoints = True

    def __init__(self, redetect_every: int) -> None:
        self.redetect_every = redetect_every
        self.tracking = False
        self._rois: list = []
        self._since_detection = 0

    def reset(self, tracking: bool = False) -> None:
        """Start a new input; ``tracking``: consecutive calls are frames of one video."""
        self.tracking, self._rois, self._since_detection = tracking, [], 0

    def _run(self, image: np.ndarray, pipeline, roi_of):
        """(results, tracked): landmarks on last frame's regions while every tracked one survives, else the full
        pipeline (detector + landmarks)."""
        due = self.redetect_every > 0 and self._since_detection >= self.redetect_every
        if self.tracking and self._rois and not due:
            results = pipeline.landmarks(image, self._rois)
            if len(results) == len(self._rois):
                self._since_detection += 1
                self._rois = [_keep_close(old, roi_of(r.keypoints)) for old, r in zip(self._rois, results)]
                return results, True
        results = pipeline(image)
        self._since_detection = 1
        self._rois = [roi_of(r.keypoints) for r in results] if self.tracking else []
        return results, False


class BlazePoseDetector(_Tracking):
    """People with 33 BlazePose landmarks, mapped to :data:`BODY_JOINT_SET` (see the module docstring)."""

    def __init__(self, min_detection_score: float = 0.5, min_presence: float = 0.5, box: str = "all",
                 redetect_every: int = 30, weights_dir: Optional[Union[str, Path]] = None) -> None:
        from hmr.keypoints import BlazePose
        if box not in ("all", "visible"):
            raise ValueError(f"box must be 'all' or 'visible', got {box!r}")
        super().__init__(redetect_every)
        self.pose = BlazePose(weights_dir, min_detection_score=min_detection_score, min_presence=min_presence)
        self.box = box

    def __call__(self, image: np.ndarray) -> List[Detection]:
        from hmr.keypoints.blazepose import as_rgb
        image = as_rgb(image)
        h, w = image.shape[:2]
        results, tracked = self._run(image, self.pose, body_track_roi)
        source = "blazepose (tracked)" if tracked else "blazepose"
        return [_body_detection(r, h, w, self.box, source) for r in results]


def _body_detection(r, height: int, width: int, box: str, source: str) -> Detection:
    """A demo detection from a BlazePose :class:`~hmr.keypoints.PoseResult`."""
    from hmr.keypoints import map_body
    conf = _confidence_inside(r.keypoints, r.visibility, height, width)
    xyxy = r.box if box == "all" else r.visible_box(0.5)
    score = r.detection_score if math.isfinite(r.detection_score) else r.score
    return Detection(_xyxy_to_xywh(xyxy), float(score), source,
                     keypoints=_mapped(map_body(r.keypoints, conf, BODY_JOINT_SET)), joint_set=BODY_JOINT_SET,
                     extra={"landmarks": np.concatenate([r.keypoints, conf[:, None]], axis=1),
                            "landmark_format": "blazepose33", "landmark_score": float(r.score)})


class BoxKeypoints:
    """BlazePose landmarks for body boxes that came without keypoints (see the module docstring)."""

    def __init__(self, min_presence: float = 0.5, weights_dir: Optional[Union[str, Path]] = None) -> None:
        from hmr.keypoints import BlazePose
        self.pose = BlazePose(weights_dir, min_presence=min_presence, dedupe=0.0)  # keep every region's result

    def __call__(self, image: np.ndarray, detections: Sequence[Detection]) -> List[Detection]:
        """``detections`` with keypoints added where they had none and the landmark network finds a person in
        the box (the box, score and source stay; the source gains ``+ blazepose keypoints``)."""
        from dataclasses import replace

        from hmr.keypoints.blazepose import as_rgb
        from hmr.keypoints.roi import RotatedRect
        image = as_rgb(image)
        h, w = image.shape[:2]
        out = list(detections)
        for i, det in enumerate(detections):
            if det.keypoints is not None:
                continue
            x, y, bw, bh = det.bbox
            regions = [RotatedRect(x + bw / 2, y + bh / 2, s * max(bw, bh), s * max(bw, bh), 0.0)
                       for s in BOX_ROI_SCALES]
            found = self.pose.landmarks(image, regions)
            if found:
                body = _body_detection(max(found, key=lambda r: r.score), h, w, "all", det.source)
                out[i] = replace(det, keypoints=body.keypoints, joint_set=body.joint_set,
                                 source=f"{det.source} + blazepose keypoints", extra={**det.extra, **body.extra})
        return out


class HandsDetector(_Tracking):
    """Hands with 21 MediaPipe landmarks (= :data:`HAND_JOINT_SET` order) and handedness (``side``; the person's
    own side in an unmirrored photo)."""

    def __init__(self, min_detection_score: float = 0.5, min_presence: float = 0.5, redetect_every: int = 30,
                 weights_dir: Optional[Union[str, Path]] = None) -> None:
        from hmr.keypoints import MediaPipeHands
        super().__init__(redetect_every)
        self.hands = MediaPipeHands(weights_dir, min_detection_score=min_detection_score,
                                    min_presence=min_presence)

    def __call__(self, image: np.ndarray) -> List[Detection]:
        from hmr.keypoints import map_hand
        from hmr.keypoints.blazepose import as_rgb
        image = as_rgb(image)
        h, w = image.shape[:2]
        results, tracked = self._run(image, self.hands, hand_track_roi)
        found = []
        for r in results:
            conf = _confidence_inside(r.keypoints, np.full(len(r.keypoints), r.score), h, w)
            score = r.detection_score if math.isfinite(r.detection_score) else r.score
            found.append(Detection(
                _xyxy_to_xywh(r.box), float(score), "hands (tracked)" if tracked else "hands", side=r.handedness,
                keypoints=_mapped(map_hand(r.keypoints, conf, HAND_JOINT_SET)), joint_set=HAND_JOINT_SET,
                extra={"landmarks": np.concatenate([r.keypoints, conf[:, None]], axis=1),
                       "landmark_format": "mediapipe_hand21", "landmark_score": float(r.score),
                       "right_score": float(r.right_score)}))
        return found
