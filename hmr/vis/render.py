"""Headless mesh renderer: colour, depth, mask (and per-mesh labels) from an OpenCV intrinsic matrix.

Conventions: camera frame is OpenCV (x right, y down, z forward, metres); ``K`` maps camera points to pixel
coordinates whose integer values are pixel centres (``u = fx·x/z + s·y/z + cx``); images are HxWx3 uint8 RGB.

Two backends produce the same images:
- ``"moderngl"``: OpenGL 3.3 through an EGL standalone context (Mesa llvmpipe on a CPU-only machine);
- ``"torch"``: a pure-torch z-buffer rasteriser (no system library needed; ~10x slower).
``backend="auto"`` takes moderngl when an EGL context can be created and falls back to torch otherwise;
the choice is logged once and exposed as ``Renderer.backend``.

Shading (both backends, per pixel): the interpolated normal is flipped to face the viewer (meshes may be
open or inconsistently wound), then
``albedo·(ambient + diffuse·max(n·l, 0)·light) + specular·max(n·h, 0)^shininess·light``
(Blinn-Phong), clamped to [0, 1].
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

logger = logging.getLogger(__name__)

ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821 (torch is optional at import time)
DEFAULT_COLOR = (0.65, 0.74, 0.86)
BACKENDS = ("auto", "moderngl", "torch")


@dataclass
class RenderResult:
    """One rendered view: ``color`` uint8 HxWx3 RGB (composited on the background), ``depth`` float32 HxW
    (camera z in metres, 0 where empty), ``mask`` bool HxW (any mesh), ``labels`` int16 HxW (index of the
    mesh seen at each pixel in the list passed to :meth:`Renderer.render_meshes`, -1 where empty)."""

    color: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    labels: Optional[np.ndarray] = None


@dataclass
class Light:
    """A directional light in the camera frame. ``direction`` points from the surface towards the light."""

    direction: Tuple[float, float, float] = (-0.3, -0.5, -1.0)
    color: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.35
    shininess: float = 32.0

    def unit_direction(self) -> np.ndarray:
        d = np.asarray(self.direction, dtype=np.float32)
        norm = float(np.linalg.norm(d))
        if not np.isfinite(norm) or norm < 1e-12:
            raise ValueError(f"light direction must be a finite non-zero 3-vector, got {self.direction}")
        return d / norm


@dataclass
class Mesh:
    """A triangle mesh to render: ``vertices`` (V, 3) camera frame metres, ``faces`` (F, 3) vertex indices,
    ``color`` RGB in [0, 1] — one (3,) colour or per-vertex (V, 3) — and a specular strength."""

    vertices: ArrayLike
    faces: ArrayLike
    color: Union[Sequence[float], ArrayLike, None] = None
    specular: float = 0.15


@dataclass
class Scene:
    """Flattened render input shared by the backends (all float32/int32 numpy)."""

    positions: np.ndarray  # (V, 3) camera frame
    normals: np.ndarray  # (V, 3) unit, area-weighted vertex normals
    colors: np.ndarray  # (V, 3) albedo in [0, 1]
    labels: np.ndarray  # (V,) mesh index
    specular: np.ndarray  # (V,)
    faces: np.ndarray  # (F, 3) int32 into the concatenated vertices
    K: np.ndarray  # (3, 3)
    light: Light = field(default_factory=Light)


# A backend rasterises a Scene into (color uint8 HxWx3, depth float32 HxW, labels int16 HxW).
RasterFn = Callable[[Scene, int, int], Tuple[np.ndarray, np.ndarray, np.ndarray]]


def _to_numpy(x: ArrayLike, dtype: np.dtype) -> np.ndarray:
    """numpy copy/view of an array or a (possibly autograd-tracked, GPU) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3); vertices on no face get a zero normal."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2·area
    normals = np.zeros_like(vertices)
    for corner in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(faces[:, corner], weights=face_n[:, axis], minlength=len(vertices))
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(norm, 1e-12)).astype(np.float32)


def _check_K(K: ArrayLike) -> np.ndarray:
    K = _to_numpy(K, np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise ValueError(f"K must be a finite (3, 3) intrinsic matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[2, 2] - 1) > 1e-6 or np.any(K[2, :2] != 0) or K[1, 0] != 0:
        raise ValueError(f"K must be upper triangular with positive focal lengths and K[2,2]=1, got\n{K}")
    return K.astype(np.float32)


def build_scene(meshes: Sequence[Mesh], K: ArrayLike, light: Optional[Light] = None) -> Scene:
    """Validate meshes and flatten them into one :class:`Scene` (raises ValueError on bad input)."""
    if len(meshes) == 0:
        raise ValueError("render needs at least one mesh")
    pos, nrm, col, lab, spec, fac = [], [], [], [], [], []
    offset = 0
    for i, mesh in enumerate(meshes):
        v = _to_numpy(mesh.vertices, np.float32)
        f = _to_numpy(mesh.faces, np.int64)
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"mesh {i}: vertices must be (V, 3), got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"mesh {i}: faces must be (F, 3), got {f.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"mesh {i}: vertices contain NaN or Inf")
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise ValueError(f"mesh {i}: face indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
        c = DEFAULT_COLOR if mesh.color is None else mesh.color
        c = _to_numpy(c, np.float32)
        if c.shape == (3,):
            c = np.broadcast_to(c, v.shape)
        if c.shape != v.shape:
            raise ValueError(f"mesh {i}: color must be (3,) or (V, 3) = {v.shape}, got {c.shape}")
        if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
            raise ValueError(f"mesh {i}: colours must be finite RGB values in [0, 1]")
        pos.append(v)
        nrm.append(vertex_normals(v, f))
        col.append(c)
        lab.append(np.full(len(v), i, np.float32))
        spec.append(np.full(len(v), float(mesh.specular), np.float32))
        fac.append(f + offset)
        offset += len(v)
    return Scene(
        positions=np.concatenate(pos), normals=np.concatenate(nrm), colors=np.ascontiguousarray(np.concatenate(col)),
        labels=np.concatenate(lab), specular=np.concatenate(spec),
        faces=np.concatenate(fac).astype(np.int32), K=_check_K(K), light=light or Light(),
    )


def rotate_about_center(vertices: np.ndarray, axis: str, degrees: float) -> np.ndarray:
    """Rotate a (V, 3) point set about its bounding-box centre around the camera ``x`` or ``y`` axis."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    if axis == "y":
        R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)
    elif axis == "x":
        R = np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float32)
    else:
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    center = 0.5 * (vertices.min(0) + vertices.max(0))
    return (vertices - center) @ R.T + center


def _make_backend(name: str) -> Tuple[str, RasterFn]:
    if name not in BACKENDS:
        raise ValueError(f"unknown render backend {name!r}; choose one of {BACKENDS}")
    if name in ("auto", "moderngl"):
        try:
            from hmr.vis import render_gl

            render_gl.shared_context()
            return "moderngl", render_gl.rasterize
        except Exception as err:  # any EGL/driver failure: fall back or re-raise with context
            if name == "moderngl":
                raise RuntimeError(f"moderngl EGL backend unavailable: {err}") from err
            logger.warning("moderngl EGL context unavailable (%s); using the torch z-buffer renderer (slower)", err)
    from hmr.vis import render_torch

    return "torch", render_torch.rasterize


_announced: set = set()


class Renderer:
    """Render meshes at a fixed image size. ``backend`` is ``"auto"``, ``"moderngl"`` or ``"torch"``."""

    def __init__(self, width: int, height: int, backend: str = "auto") -> None:
        if int(width) < 1 or int(height) < 1:
            raise ValueError(f"image size must be positive, got width={width}, height={height}")
        self.width, self.height = int(width), int(height)
        self.backend, self._raster = _make_backend(backend)
        if self.backend not in _announced:
            _announced.add(self.backend)
            logger.info("renderer backend: %s", self.backend)

    def render_meshes(self, meshes: Sequence[Mesh], K: ArrayLike, background: Optional[np.ndarray] = None,
                      light: Optional[Light] = None) -> RenderResult:
        """Render several meshes together (shared z-buffer); ``labels`` tells which mesh owns each pixel."""
        scene = build_scene(meshes, K, light)
        color, depth, labels = self._raster(scene, self.width, self.height)
        mask = labels >= 0
        if background is not None:
            bg = np.asarray(background)
            if bg.shape != (self.height, self.width, 3) or bg.dtype != np.uint8:
                raise ValueError(f"background must be uint8 ({self.height}, {self.width}, 3) RGB, "
                                 f"got {bg.dtype} {bg.shape}")
            color = np.where(mask[..., None], color, bg)
        return RenderResult(color=color, depth=depth, mask=mask, labels=labels)

    def render(self, vertices: ArrayLike, faces: ArrayLike, K: ArrayLike, background: Optional[np.ndarray] = None,
               color: Union[Sequence[float], ArrayLike, None] = None, light: Optional[Light] = None) -> RenderResult:
        """Render one mesh (vertices (V, 3) in the camera frame) with intrinsics ``K`` (3, 3)."""
        return self.render_meshes([Mesh(vertices, faces, color)], K, background, light)

    def render_batch(self, vertices: ArrayLike, faces: ArrayLike, K: ArrayLike,
                     backgrounds: Optional[Sequence[np.ndarray]] = None,
                     color: Union[Sequence[float], ArrayLike, None] = None,
                     light: Optional[Light] = None) -> List[RenderResult]:
        """Render a batch: vertices (B, V, 3), K (3, 3) or (B, 3, 3), optional B backgrounds."""
        verts = _to_numpy(vertices, np.float32)
        if verts.ndim != 3:
            raise ValueError(f"render_batch expects vertices (B, V, 3), got {verts.shape}")
        Ks = _to_numpy(K, np.float32)
        Ks = np.broadcast_to(Ks, (len(verts), 3, 3)) if Ks.ndim == 2 else Ks
        if len(Ks) != len(verts) or (backgrounds is not None and len(backgrounds) != len(verts)):
            raise ValueError("render_batch: K and backgrounds must have one entry per mesh")
        return [self.render(v, faces, k, None if backgrounds is None else backgrounds[i], color, light)
                for i, (v, k) in enumerate(zip(verts, Ks))]

    def side_view(self, vertices: ArrayLike, faces: ArrayLike, K: ArrayLike, degrees: float = 90.0,
                  background: Optional[np.ndarray] = None, color: Union[Sequence[float], ArrayLike, None] = None,
                  light: Optional[Light] = None) -> RenderResult:
        """The mesh turned by ``degrees`` about the vertical (camera y) axis through its centre."""
        v = rotate_about_center(_to_numpy(vertices, np.float32), "y", degrees)
        return self.render(v, faces, K, background, color, light)

    def top_view(self, vertices: ArrayLike, faces: ArrayLike, K: ArrayLike, degrees: float = 90.0,
                 background: Optional[np.ndarray] = None, color: Union[Sequence[float], ArrayLike, None] = None,
                 light: Optional[Light] = None) -> RenderResult:
        """The mesh seen from above: turned by ``degrees`` about the camera x axis through its centre."""
        v = rotate_about_center(_to_numpy(vertices, np.float32), "x", degrees)
        return self.render(v, faces, K, background, color, light)


def shade(normals: "torch.Tensor", positions: "torch.Tensor", albedo: "torch.Tensor",  # noqa: F821
          specular: "torch.Tensor", light: Light) -> "torch.Tensor":  # noqa: F821
    """Reference shading (the GLSL shader in ``render_gl`` implements the same formula) -> RGB in [0, 1]."""
    import torch

    n = torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
    view = torch.nn.functional.normalize(-positions, dim=-1, eps=1e-12)
    n = torch.where((n * view).sum(-1, keepdim=True) < 0, -n, n)
    l_dir = torch.as_tensor(light.unit_direction(), dtype=n.dtype)
    l_col = torch.as_tensor(np.asarray(light.color, np.float32), dtype=n.dtype)
    diffuse = (n @ l_dir).clamp(min=0)[..., None]
    half = torch.nn.functional.normalize(l_dir + view, dim=-1, eps=1e-12)
    spec = specular[..., None] * (n * half).sum(-1, keepdim=True).clamp(min=0) ** light.shininess
    return (albedo * (light.ambient + diffuse * l_col) + spec * l_col).clamp(0, 1)
