"""Overlays: a predicted mesh rendered with the full-frame camera onto its image, next to a side view."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from hmr.utils.io import atomic_open
from hmr.vis.render import Mesh, Renderer

MESH_COLORS = ((0.65, 0.74, 0.86), (0.86, 0.66, 0.55), (0.62, 0.84, 0.62), (0.85, 0.78, 0.50))


def intrinsics(focal: float, height: int, width: int) -> np.ndarray:
    """Pinhole K with the principal point at the image centre (CLIFF's full-frame camera)."""
    return np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]], dtype=np.float32)


def render_overlay(image: np.ndarray, meshes: Sequence[np.ndarray], faces: np.ndarray, K: np.ndarray,
                   alpha: float = 0.8, renderer: Optional[Renderer] = None) -> np.ndarray:
    """Meshes (camera-frame (V, 3) each) rendered with ``K`` and blended onto ``image`` (uint8 RGB)."""
    h, w = image.shape[:2]
    renderer = renderer or Renderer(w, h)
    parts = [Mesh(v, faces, MESH_COLORS[i % len(MESH_COLORS)]) for i, v in enumerate(meshes)]
    if not parts:
        return image.copy()
    result = renderer.render_meshes(parts, K)
    blend = image.astype(np.float32)
    m = result.mask[..., None]
    blend = np.where(m, alpha * result.color.astype(np.float32) + (1 - alpha) * blend, blend)
    return blend.clip(0, 255).astype(np.uint8)


def render_side_view(meshes: Sequence[np.ndarray], faces: np.ndarray, K: np.ndarray, height: int, width: int,
                     degrees: float = 90.0, renderer: Optional[Renderer] = None) -> np.ndarray:
    """All meshes turned together by ``degrees`` about the vertical axis through their common centre."""
    renderer = renderer or Renderer(width, height)
    background = np.full((height, width, 3), 255, np.uint8)
    if not meshes:
        return background
    stacked = np.concatenate(meshes)
    center = 0.5 * (stacked.min(0) + stacked.max(0))
    a = np.deg2rad(degrees)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], np.float32)
    turned = [(v - center) @ R.T + center for v in meshes]
    parts = [Mesh(v, faces, MESH_COLORS[i % len(MESH_COLORS)]) for i, v in enumerate(turned)]
    return renderer.render_meshes(parts, K, background=background).color


def overlay_panel(image: np.ndarray, meshes: Sequence[np.ndarray], faces: np.ndarray, K: np.ndarray,
                  side_view: bool = True) -> np.ndarray:
    """[image with overlay | side view] as one uint8 RGB panel."""
    h, w = image.shape[:2]
    renderer = Renderer(w, h)
    panel = [render_overlay(image, meshes, faces, K, renderer=renderer)]
    if side_view:
        panel.append(render_side_view(meshes, faces, K, h, w, renderer=renderer))
    return np.concatenate(panel, axis=1)


def save_png(path: Union[str, Path], image: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG, atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    with atomic_open(path, "wb") as handle:
        handle.write(encoded.tobytes())


def save_overlay(path: Union[str, Path], image: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                 focal: float) -> None:
    """Overlay + side view of one camera-frame mesh, written as PNG."""
    h, w = image.shape[:2]
    save_png(path, overlay_panel(image, [vertices], faces, intrinsics(focal, h, w)))
