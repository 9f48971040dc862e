"""Rotated regions of interest, MediaPipe's way: rectangles from detections, their transformation (shift, scale,
square), the warp of an image region into a network's input square, and the way back to image pixels.

Convention (MediaPipe's ImageToTensorCalculator): the rectangle's corners map onto the corners of the
``size x size`` tensor and output pixel ``(u, v)`` samples the image at ``corner + (u, v) * side / size``; a
landmark at normalised crop coordinates ``(x, y)`` (``[0, 1]`` across the tensor) lies at
``centre + R(rotation) @ ((x - 0.5) * width, (y - 0.5) * height)`` in image pixels (y down, so a positive
rotation turns clockwise on screen).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence, Tuple

import cv2
import numpy as np


def normalize_radians(angle: float) -> float:
    """``angle`` wrapped into ``[-pi, pi)``."""
    return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


@dataclass(frozen=True)
class RotatedRect:
    """A rectangle in image pixels: centre ``(cx, cy)``, ``width`` along its own x axis, ``height`` along its
    y axis, ``rotation`` in radians."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0

    @property
    def center(self) -> np.ndarray:
        return np.array([self.cx, self.cy])

    def rotation_matrix(self) -> np.ndarray:
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        return np.array([[c, -s], [s, c]])

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Normalised crop coordinates ``(..., 2)`` -> image pixels."""
        local = (np.asarray(xy, np.float64) - 0.5) * np.array([self.width, self.height])
        return local @ self.rotation_matrix().T + self.center

    def corners(self) -> np.ndarray:
        """The four corners ``(4, 2)``: top-left, top-right, bottom-right, bottom-left (in the rect's frame)."""
        return self.to_image(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))

    def bounds(self) -> np.ndarray:
        """Axis-aligned box ``(x0, y0, x1, y1)`` around the rectangle."""
        c = self.corners()
        return np.concatenate([c.min(axis=0), c.max(axis=0)])

    def crop_matrix(self, size: int) -> np.ndarray:
        """3x3 map from image pixels to the ``size x size`` crop's pixels."""
        scale = np.array([[size / self.width], [size / self.height]])
        linear = scale * self.rotation_matrix().T
        matrix = np.eye(3)
        matrix[:2, :2] = linear
        matrix[:2, 2] = size / 2.0 - linear @ self.center
        return matrix


def crop(image: np.ndarray, rect: RotatedRect, size: int, border: str = "replicate") -> np.ndarray:
    """The region ``rect`` of an ``H x W x 3`` uint8 image warped into a ``size x size`` uint8 square (bilinear;
    outside the image: ``"zero"`` or ``"replicate"``, as MediaPipe's detectors and landmark networks use)."""
    mode = {"zero": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}[border]
    return cv2.warpPerspective(image, rect.crop_matrix(size), (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=mode, borderValue=0)


def crop_batch(image: np.ndarray, rects: Sequence[RotatedRect], size: int) -> np.ndarray:
    """Every region of ``rects`` cropped (replicated border) into one float batch ``(N, 3, size, size)`` in [0, 1]:
    the input of MediaPipe's landmark networks."""
    crops = np.stack([crop(image, r, size, border="replicate") for r in rects]).astype(np.float32) / 255.0
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2))


def letterbox_rect(height: int, width: int) -> RotatedRect:
    """The whole image padded to a centred square (MediaPipe's ``keep_aspect_ratio`` for square tensors)."""
    side = float(max(height, width))
    return RotatedRect(width / 2.0, height / 2.0, side, side, 0.0)


def rotation_from_points(start: np.ndarray, end: np.ndarray, target_degrees: float = 90.0) -> float:
    """Rotation that turns the image vector ``start -> end`` to ``target_degrees`` (90: pointing up)."""
    angle = math.radians(target_degrees) - math.atan2(-(end[1] - start[1]), end[0] - start[0])
    return normalize_radians(angle)


def rect_from_alignment_points(center: np.ndarray, scale_point: np.ndarray,
                               target_degrees: float = 90.0) -> RotatedRect:
    """A square centred on ``center`` with half-side ``|scale_point - center|``, rotated so that
    ``center -> scale_point`` points up (MediaPipe's AlignmentPointsRectsCalculator)."""
    side = 2.0 * float(np.linalg.norm(np.asarray(scale_point) - np.asarray(center)))
    return RotatedRect(float(center[0]), float(center[1]), side, side,
                       rotation_from_points(center, scale_point, target_degrees))


def rect_from_box(box: np.ndarray, start: np.ndarray, end: np.ndarray, target_degrees: float = 90.0) -> RotatedRect:
    """The detection box ``(x0, y0, x1, y1)`` rotated so that ``start -> end`` points up
    (MediaPipe's DetectionsToRectsCalculator)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return RotatedRect((x0 + x1) / 2.0, (y0 + y1) / 2.0, x1 - x0, y1 - y0,
                       rotation_from_points(start, end, target_degrees))


def transform_rect(rect: RotatedRect, scale: float, shift: Tuple[float, float] = (0.0, 0.0),
                   square_long: bool = True) -> RotatedRect:
    """Shift by ``shift`` x the size along the rect's own axes, make it square on its long side, then scale
    (MediaPipe's RectTransformationCalculator)."""
    offset = rect.rotation_matrix() @ np.array([shift[0] * rect.width, shift[1] * rect.height])
    width, height = rect.width, rect.height
    if square_long:
        width = height = max(width, height)
    return replace(rect, cx=rect.cx + float(offset[0]), cy=rect.cy + float(offset[1]), width=width * scale,
                   height=height * scale)
