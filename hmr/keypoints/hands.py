"""MediaPipe Hands on the converted torch networks: palm detector -> rotated hand region -> 21 hand landmarks.

Palm detector (192x192 letterbox, 2,016 SSD anchors, weighted NMS) -> for every palm the detection box rotated
so that wrist centre -> middle-finger knuckle points up, shifted by half its height towards the fingers, squared
on its long side and scaled by 2.6 -> hand_landmark_full on the 224x224 crop -> 21 landmarks (MediaPipe's
order, which is FreiHAND's: wrist, then thumb, index, middle, ring, pinky from base to tip) in image pixels.
Constants from MediaPipe 0.10.21 (palm_detection_cpu, palm_detection_detection_to_roi, hand_landmark_cpu).

Handedness: the network's handedness output is the score of MediaPipe's label "Left", which MediaPipe defines
for mirrored (selfie) images; in an ordinary, unmirrored photo it is the probability that the hand is the
person's right hand. :class:`HandResult` reports the anatomical side for unmirrored photos (``mirrored=True``
for selfie-style input).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from hmr.keypoints.blazepose import as_rgb
from hmr.keypoints.roi import RotatedRect, crop_batch, rect_from_box, transform_rect
from hmr.keypoints.ssd import Detection, SsdDetector, drop_duplicates
from hmr.models.mediapipe import NETWORKS, load_network

HAND_LANDMARK_NAMES = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip", "index_dip",
    "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp", "ring_pip", "ring_dip",
    "ring_tip", "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
PALM_STRIDES = (8, 16, 16, 16)
ROI_SCALE = 2.6
ROI_SHIFT_Y = -0.5
NORMALIZE_Z = 0.4  # the hand network's z is divided by 0.4 as well (hand_landmark_cpu)


@dataclass
class HandResult:
    """One hand. ``keypoints`` ``(21, 2)`` image pixels (order :data:`HAND_LANDMARK_NAMES`); ``depth`` ``(21,)``
    relative depth in pixels (wrist ~0, smaller = nearer); ``world`` ``(21, 3)`` metres, axes of the image;
    ``handedness``: ``"right"`` or ``"left"`` (the person's own side); ``right_score``: probability that it is
    a right hand; ``score``: the landmark network's hand flag; ``detection_score``: the palm detector's; ``box``
    ``(x0, y0, x1, y1)`` around the 21 keypoints; ``roi``: the region the landmarks were read from."""

    keypoints: np.ndarray
    depth: np.ndarray
    world: np.ndarray
    handedness: str
    right_score: float
    score: float
    detection_score: float
    box: np.ndarray
    roi: RotatedRect


class MediaPipeHands:
    """Every hand in an image: ``MediaPipeHands()(image)`` -> list of :class:`HandResult`, best palm first.

    ``image``: ``H x W x 3`` uint8 RGB (grey is stacked). ``variant``: ``"full"`` or ``"lite"`` networks;
    ``min_detection_score`` (MediaPipe: 0.5) and ``min_presence`` (hand flag, MediaPipe: 0.5) thresholds;
    ``mirrored``: the image is a selfie-style mirror image (MediaPipe's own handedness convention);
    ``windows`` / ``dedupe``: as for :class:`hmr.keypoints.blazepose.BlazePose`.
    """

    def __init__(self, weights_dir: Optional[Union[str, Path]] = None, variant: str = "full",
                 min_detection_score: float = 0.5, min_presence: float = 0.5, mirrored: bool = False,
                 windows: bool = True, dedupe: float = 0.1) -> None:
        if variant not in ("full", "lite"):
            raise ValueError(f"variant must be 'full' or 'lite', got {variant!r}")
        palm = f"palm_detection_{variant}"
        self.detector = SsdDetector(load_network(palm, weights_dir), PALM_STRIDES, 7, NETWORKS[palm].input_range,
                                    min_detection_score, windows=windows)
        self.dedupe = dedupe
        self.net = load_network(f"hand_landmark_{variant}", weights_dir)
        self.size = int(self.net.input_shape[2])
        self.min_presence = min_presence
        self.mirrored = mirrored

    def __call__(self, image: np.ndarray) -> List[HandResult]:
        image = as_rgb(image)
        detections = self.detector(image)
        return self.landmarks(image, [self.roi(d) for d in detections], [d.score for d in detections])

    @staticmethod
    def roi(detection: Detection) -> RotatedRect:
        """The landmark region of a palm detection (keypoint 0: wrist centre, 2: middle-finger knuckle)."""
        rect = rect_from_box(detection.box, detection.keypoints[0], detection.keypoints[2])
        return transform_rect(rect, ROI_SCALE, shift=(0.0, ROI_SHIFT_Y), square_long=True)

    def landmarks(self, image: np.ndarray, rois: Sequence[RotatedRect],
                  detection_scores: Optional[Sequence[float]] = None) -> List[HandResult]:
        """Run the hand landmark network on each region (one batch) and map the results to image pixels."""
        if not rois:
            return []
        image = as_rgb(image)
        crops = torch.from_numpy(crop_batch(image, rois, self.size))
        with torch.no_grad():
            raw, flag, left_label, world = (t.numpy() for t in self.net(crops))
        results = []
        for i, rect in enumerate(rois):
            if float(flag[i, 0]) < self.min_presence:
                continue
            lm = raw[i].reshape(21, 3).astype(np.float64) / self.size
            lm[:, 2] /= NORMALIZE_Z
            keypoints = rect.to_image(lm[:, :2])
            w = world[i].reshape(21, 3).astype(np.float64)
            w[:, :2] = w[:, :2] @ rect.rotation_matrix().T
            right = float(left_label[i, 0]) if not self.mirrored else 1.0 - float(left_label[i, 0])
            results.append(HandResult(
                keypoints=keypoints, depth=lm[:, 2] * rect.width, world=w,
                handedness="right" if right >= 0.5 else "left", right_score=right, score=float(flag[i, 0]),
                detection_score=float(detection_scores[i]) if detection_scores is not None else float("nan"),
                box=np.concatenate([keypoints.min(axis=0), keypoints.max(axis=0)]), roi=rect))
        kept = drop_duplicates([r.keypoints for r in results], [np.ones(21)] * len(results), self.dedupe)
        return [results[i] for i in kept]
