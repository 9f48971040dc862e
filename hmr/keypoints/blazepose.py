"""BlazePose (MediaPipe Pose, full model) for every person in an image, on the converted torch networks.

Person detector (224x224 letterbox, 2,254 SSD anchors, weighted NMS) -> for every detection its own rotated
region (hip centre, rotation from hip centre to the full-body scale point, side 2 x that distance x 1.25) ->
pose_landmark_full on the 256x256 crop -> heatmap refinement -> 33 landmarks in image pixels. The steps and
constants are MediaPipe 0.10.21's (pose_detection_cpu, pose_detection_to_roi, pose_landmark_by_roi_cpu); unlike
MediaPipe, which keeps only the first detection, every detection is followed, and wide images are also searched
in square windows (MediaPipe's detector scores a second person in the same view low).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from hmr.keypoints.roi import RotatedRect, crop_batch, rect_from_alignment_points, transform_rect
from hmr.keypoints.ssd import Detection, SsdDetector, drop_duplicates
from hmr.models.mediapipe import NETWORKS, load_network

POSE_LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # left/right: the person's own (anatomical) sides
DETECTOR_STRIDES = (8, 16, 32, 32, 32)
ROI_SCALE = 1.25
HEATMAP_KERNEL = 7
HEATMAP_MIN_CONFIDENCE = 0.5


@dataclass
class PoseResult:
    """One person. ``keypoints`` ``(33, 2)`` image pixels (order :data:`POSE_LANDMARK_NAMES`); ``depth``
    ``(33,)`` relative depth in pixels (hips ~0, smaller = nearer the camera); ``visibility`` / ``presence``
    ``(33,)`` in [0, 1]; ``world`` ``(33, 3)`` metres, hip-centred, axes of the image; ``score``: the landmark
    network's person flag; ``detection_score``: the detector's; ``box`` ``(x0, y0, x1, y1)`` around all 33
    keypoints (the network places occluded and out-of-frame ones too); ``roi``: the region the landmarks were
    read from."""

    keypoints: np.ndarray
    depth: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    score: float
    detection_score: float
    box: np.ndarray
    roi: RotatedRect

    def visible_box(self, min_visibility: float = 0.5) -> np.ndarray:
        """Box around the keypoints with ``visibility >= min_visibility`` (all of them if fewer than two)."""
        pts = self.keypoints[self.visibility >= min_visibility]
        pts = pts if len(pts) >= 2 else self.keypoints
        return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = HEATMAP_KERNEL,
                        min_confidence: float = HEATMAP_MIN_CONFIDENCE) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmapCalculator: each normalised landmark ``xy`` ``(K, 2)`` moves to the
    sigmoid-weighted mean cell index (divided by the map size) of the ``kernel`` window around it on its heatmap
    channel ``heatmap`` ``(K', h, w)`` when the window's peak confidence reaches ``min_confidence``."""
    out = xy.copy()
    _, h, w = heatmap.shape
    half = (kernel - 1) // 2
    for k in range(len(xy)):
        col, row = int(xy[k, 0] * w), int(xy[k, 1] * h)  # C++ float -> int truncation
        if not (0 <= col < w and 0 <= row < h):
            continue
        rows = slice(max(0, row - half), min(h, row + half + 1))
        cols = slice(max(0, col - half), min(w, col + half + 1))
        conf = sigmoid(heatmap[k, rows, cols].astype(np.float64))
        if conf.max() >= min_confidence and conf.sum() > 0:
            r, c = np.mgrid[rows, cols]
            out[k] = [(c * conf).sum() / w / conf.sum(), (r * conf).sum() / h / conf.sum()]
    return out


class BlazePose:
    """Several people per image: ``BlazePose()(image)`` -> list of :class:`PoseResult`, best detection first.

    ``image``: ``H x W x 3`` uint8 RGB (a 2-D grey image is stacked to RGB). ``min_detection_score``: the
    detector's threshold (MediaPipe: 0.5); ``min_presence``: drop people whose landmark-network person flag is
    lower (MediaPipe: 0.5); ``refine``: heatmap refinement of the landmarks (MediaPipe: on). ``windows``: also
    search square windows of images wider than 4:3 (the detector misses the second person of a wide image, see
    :class:`hmr.keypoints.ssd.SsdDetector`); two people whose keypoints lie within ``dedupe`` x the person's size
    of each other (median) are one person found twice (the better detection is kept).
    """

    def __init__(self, weights_dir: Optional[Union[str, Path]] = None, min_detection_score: float = 0.5,
                 min_presence: float = 0.5, refine: bool = True, windows: bool = True,
                 dedupe: float = 0.1) -> None:
        self.detector = SsdDetector(load_network("pose_detection", weights_dir), DETECTOR_STRIDES, 4,
                                    NETWORKS["pose_detection"].input_range, min_detection_score, windows=windows)
        self.dedupe = dedupe
        self.net = load_network("pose_landmark_full", weights_dir)
        self.size = int(self.net.input_shape[2])
        self.min_presence = min_presence
        self.refine = refine
        by_name = {self.net.tensor_info(t)["name"]: t for t in self.net.spec["outputs"]}
        # landmarks (B, 195), person flag (B, 1), heatmaps (B, 39, 64, 64), world landmarks (B, 117)
        self._outputs = [by_name[n] for n in ("Identity", "Identity_1", "Identity_3", "Identity_4")]

    def __call__(self, image: np.ndarray) -> List[PoseResult]:
        image = as_rgb(image)
        detections = self.detector(image)
        return self.landmarks(image, [self.roi(d) for d in detections], [d.score for d in detections])

    @staticmethod
    def roi(detection: Detection) -> RotatedRect:
        """The landmark region of a person detection (keypoint 0: hip centre, 1: full-body scale point)."""
        rect = rect_from_alignment_points(detection.keypoints[0], detection.keypoints[1])
        return transform_rect(rect, ROI_SCALE, square_long=True)

    def landmarks(self, image: np.ndarray, rois: Sequence[RotatedRect],
                  detection_scores: Optional[Sequence[float]] = None) -> List[PoseResult]:
        """Run the landmark network on each region (one batch) and map the results to image pixels."""
        if not rois:
            return []
        image = as_rgb(image)
        crops = torch.from_numpy(crop_batch(image, rois, self.size))
        with torch.no_grad():
            raw, flag, heatmap, world = (t.numpy() for t in self.net.tensors(crops, self._outputs))
        results = []
        for i, rect in enumerate(rois):
            if float(flag[i, 0]) < self.min_presence:
                continue
            lm = raw[i].reshape(39, 5)[:33].astype(np.float64)
            xy = lm[:, :2] / self.size
            if self.refine:
                xy = refine_from_heatmap(xy, heatmap[i])
            keypoints = rect.to_image(xy)
            w = world[i].reshape(39, 3)[:33].astype(np.float64)
            w[:, :2] = w[:, :2] @ rect.rotation_matrix().T
            results.append(PoseResult(
                keypoints=keypoints, depth=lm[:, 2] / self.size * rect.width, visibility=sigmoid(lm[:, 3]),
                presence=sigmoid(lm[:, 4]), world=w, score=float(flag[i, 0]),
                detection_score=float(detection_scores[i]) if detection_scores is not None else float("nan"),
                box=np.concatenate([keypoints.min(axis=0), keypoints.max(axis=0)]), roi=rect))
        kept = drop_duplicates([r.keypoints for r in results], [r.visibility for r in results], self.dedupe)
        return [results[i] for i in kept]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 RGB from an RGB or grey uint8 image."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB or H x W grey image, got shape {image.shape}")
    return np.ascontiguousarray(image)
