"""MediaPipe's SSD detector heads: anchors, box/keypoint decoding and weighted non-maximum suppression
(SsdAnchorsCalculator, TensorsToDetectionsCalculator, NonMaxSuppressionCalculator with WEIGHTED)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch

from hmr.keypoints.roi import RotatedRect, crop, letterbox_rect
from hmr.models.mediapipe.network import MediaPipeNet


@dataclass
class Detection:
    """A detection: ``box`` ``(x0, y0, x1, y1)`` and ``keypoints`` ``(K, 2)``, both in the same coordinates
    (normalised to the detector input while decoding, image pixels once returned), and its ``score``."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def ssd_anchors(input_size: int, strides: Sequence[int]) -> np.ndarray:
    """Anchor centres ``(N, 2)`` in ``[0, 1]``: per layer two anchors per cell (aspect 1 and the interpolated
    scale; with fixed anchor sizes both are unit squares); consecutive layers with one stride share a grid."""
    centres: List[np.ndarray] = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = math.ceil(input_size / strides[i])
        y, x = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = (np.stack([x, y], axis=-1).reshape(-1, 2) + 0.5) / cells
        centres.append(np.repeat(grid, 2 * (j - i), axis=0))
        i = j
    return np.concatenate(centres).astype(np.float64)


def decode(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray, input_size: int, num_keypoints: int,
           min_score: float) -> List[Detection]:
    """Raw regressors ``(N, 4 + 2K)`` (centre x, centre y, w, h, keypoints; pixels of the detector input,
    relative to the anchor) and score logits ``(N,)`` -> detections with score >= ``min_score``, in normalised
    detector-input coordinates."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
    keep = np.nonzero(scores >= min_score)[0]
    out = []
    for k in keep:
        r = raw[k].astype(np.float64) / input_size
        centre = r[:2] + anchors[k]
        half = r[2:4] / 2.0
        keypoints = r[4:4 + 2 * num_keypoints].reshape(num_keypoints, 2) + anchors[k]
        out.append(Detection(np.concatenate([centre - half, centre + half]), keypoints, float(scores[k])))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(detections: Sequence[Detection], iou_threshold: float) -> List[Detection]:
    """MediaPipe's weighted NMS: the best remaining detection absorbs every detection overlapping it by more
    than ``iou_threshold`` (itself included); its box and keypoints become their score-weighted means, its
    score stays the best one's."""
    remaining = sorted(detections, key=lambda d: -d.score)
    out = []
    while remaining:
        best = remaining[0]
        overlaps = [iou(d.box, best.box) > iou_threshold for d in remaining]
        group = [d for d, o in zip(remaining, overlaps) if o]
        weights = np.array([d.score for d in group])
        box = np.sum([d.box * w for d, w in zip(group, weights)], axis=0) / weights.sum()
        keypoints = np.sum([d.keypoints * w for d, w in zip(group, weights)], axis=0) / weights.sum()
        out.append(Detection(box, keypoints, best.score))
        rest = [d for d, o in zip(remaining, overlaps) if not o]
        if len(rest) == len(remaining):
            break
        remaining = rest
    return out


def drop_duplicates(keypoints: Sequence[np.ndarray], weights: Sequence[np.ndarray], tolerance: float) -> List[int]:
    """Indices of the keypoint sets ``(K, 2)`` to keep, in order: a set whose median distance to an earlier kept
    one, over the points both weight >= 0.5 (all if fewer than three), is below ``tolerance`` x the kept set's
    extent is the same person or hand found twice (from two search windows)."""
    kept: List[int] = []
    for i, (points, weight) in enumerate(zip(keypoints, weights)):
        duplicate = False
        for k in kept:
            both = (weight >= 0.5) & (weights[k] >= 0.5)
            both = both if both.sum() >= 3 else np.ones_like(both)
            ref = keypoints[k][both]
            extent = float((ref.max(axis=0) - ref.min(axis=0)).max())
            duplicate |= float(np.median(np.linalg.norm(points[both] - ref, axis=1))) < tolerance * extent
        if not duplicate:
            kept.append(i)
    return kept


def square_windows(height: int, width: int, max_aspect: float = 4.0 / 3.0, overlap: float = 0.5) -> List[RotatedRect]:
    """Square windows (side = the short side, overlapping by ``overlap``) along the long side of an image whose
    aspect ratio exceeds ``max_aspect``; none otherwise."""
    short, long = min(height, width), max(height, width)
    if long <= max_aspect * short:
        return []
    count = math.ceil((long - short) / (short * (1.0 - overlap))) + 1
    starts = np.linspace(0.0, long - short, count)
    return [RotatedRect(s + short / 2.0, height / 2.0, short, short) if width >= height else
            RotatedRect(width / 2.0, s + short / 2.0, short, short) for s in starts]


class SsdDetector:
    """A converted MediaPipe detector network behind MediaPipe's pre- and post-processing: the image is
    letterboxed into the ``input_size`` square (zero border), decoded, weighted-NMS'd and mapped back to image
    pixels. MediaPipe's detectors are trained on one person / few hands per image and score a second, smaller
    person low; with ``windows`` an image wider (or taller) than 4:3 is also searched in overlapping square
    windows along its long side, and all detections are merged by the same weighted NMS (square-ish images get
    exactly MediaPipe's single pass)."""

    def __init__(self, net: MediaPipeNet, strides: Sequence[int], num_keypoints: int,
                 value_range: Tuple[float, float], min_score: float = 0.5, iou_threshold: float = 0.3,
                 windows: bool = True) -> None:
        self.net = net.eval()
        self.input_size = int(net.input_shape[2])
        self.anchors = ssd_anchors(self.input_size, strides)
        self.num_keypoints = num_keypoints
        self.value_range = value_range
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.windows = windows

    def regions(self, image: np.ndarray) -> List[RotatedRect]:
        """The image regions searched: the letterboxed image, then the square windows (if any)."""
        height, width = image.shape[:2]
        return [letterbox_rect(height, width)] + (square_windows(height, width) if self.windows else [])

    def prepare(self, image: np.ndarray, regions: Sequence[RotatedRect]) -> torch.Tensor:
        """The network input ``(len(regions), 3, S, S)`` in its value range."""
        lo, hi = self.value_range
        squares = np.stack([crop(image, r, self.input_size, border="zero") for r in regions])
        return torch.from_numpy(squares.astype(np.float32) * ((hi - lo) / 255.0) + lo).permute(0, 3, 1, 2)

    def __call__(self, image: np.ndarray) -> List[Detection]:
        """Detections in image pixels, best first."""
        regions = self.regions(image)
        with torch.no_grad():
            raw, logits = (y.numpy() for y in self.net(self.prepare(image, regions)))
        if raw.shape[1] != len(self.anchors):
            raise ValueError(f"{self.net.name}: {raw.shape[1]} boxes for {len(self.anchors)} anchors")
        found = []
        for rect, r, lg in zip(regions, raw, logits):
            for d in decode(r, lg[:, 0], self.anchors, self.input_size, self.num_keypoints, self.min_score):
                found.append(Detection(rect.to_image(d.box.reshape(2, 2)).reshape(4), rect.to_image(d.keypoints),
                                       d.score))
        return weighted_nms(found, self.iou_threshold)
