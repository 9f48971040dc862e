"""Pure-torch z-buffer backend of :mod:`hmr.vis.render` (the fallback when no EGL context can be made).

Faces are grouped by the size of their pixel bounding box; each group tests a fixed grid of candidate pixel
centres with edge functions. The nearest face per pixel wins through one ``scatter_reduce(amin)`` on a key
that packs (depth bits << 32 | face id): positive float32 bit patterns sort like their values. Depth and
attributes use perspective-correct barycentrics, as OpenGL does. Faces with a vertex closer than 1 mm
to the camera plane are dropped (OpenGL would clip them instead; a body in view never gets there).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from hmr.vis.render import Scene, shade

_NEAR = 1e-3
_MAX_CANDIDATES = 1 << 22  # pixels tested per chunk (memory bound)


def _edge_barycentrics(px: torch.Tensor, py: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Screen-space barycentrics (..., 3) of pixel centres (px, py) in triangles tri (..., 3, 2)."""
    x0, y0 = tri[..., 0, 0], tri[..., 0, 1]
    x1, y1 = tri[..., 1, 0], tri[..., 1, 1]
    x2, y2 = tri[..., 2, 0], tri[..., 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    w0 = (x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)
    w1 = (x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)
    w2 = (x0 - px) * (y1 - py) - (x1 - px) * (y0 - py)
    return torch.stack([w0, w1, w2], -1) / area[..., None]


def _perspective_weights(bary: torch.Tensor, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct attribute weights and depth from screen barycentrics and vertex depths."""
    inv = bary / z
    inv_sum = inv.sum(-1, keepdim=True)
    return inv / inv_sum, 1.0 / inv_sum[..., 0]


@torch.no_grad()
def rasterize(scene: Scene, width: int, height: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``scene`` -> (color uint8 HxWx3, depth float32 HxW, labels int16 HxW)."""
    pos = torch.from_numpy(scene.positions).double()
    K = torch.from_numpy(scene.K).double()
    faces = torch.from_numpy(scene.faces.astype(np.int64))
    z = pos[:, 2]
    uv = (pos @ K.T)[:, :2] / z.clamp(min=_NEAR)[:, None]
    tri = uv[faces]  # (F, 3, 2)
    tri_z = z[faces]
    lo = torch.ceil(tri.amin(1))
    hi = torch.floor(tri.amax(1))
    lo = torch.maximum(lo, torch.zeros(2, dtype=lo.dtype))
    hi = torch.minimum(hi, torch.tensor([width - 1.0, height - 1.0], dtype=hi.dtype))
    extent = hi - lo + 1  # (F, 2)
    area = ((tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1])
            - (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1]))
    keep = (tri_z.min(1).values > _NEAR) & (extent > 0).all(1) & (area.abs() > 1e-12)
    face_ids = torch.nonzero(keep)[:, 0]

    zbuf = torch.full((height * width,), torch.iinfo(torch.int64).max, dtype=torch.int64)
    size = extent[face_ids].amax(1).long()
    bucket = torch.ceil(torch.log2(size.double())).long()  # grid side 2**bucket >= size
    for b in torch.unique(bucket).tolist():
        side = 1 << b
        ids = face_ids[bucket == b]
        grid = torch.arange(side, dtype=torch.float64)
        gy, gx = torch.meshgrid(grid, grid, indexing="ij")
        per_chunk = max(1, _MAX_CANDIDATES // (side * side))
        for start in range(0, len(ids), per_chunk):
            f = ids[start:start + per_chunk]
            px = lo[f, 0, None, None] + gx  # (n, side, side)
            py = lo[f, 1, None, None] + gy
            inside = (px <= hi[f, 0, None, None]) & (py <= hi[f, 1, None, None])
            bary = _edge_barycentrics(px, py, tri[f][:, None, None])
            inside &= (bary >= 0).all(-1)
            n_idx, _, _ = torch.nonzero(inside, as_tuple=True)
            _, depth = _perspective_weights(bary[inside], tri_z[f][n_idx])
            pix = (py[inside] * width + px[inside]).long()
            key = (depth.float().view(torch.int32).long() << 32) | f[n_idx]
            zbuf.scatter_reduce_(0, pix, key, reduce="amin")

    covered = zbuf != torch.iinfo(torch.int64).max
    pix = torch.nonzero(covered)[:, 0]
    fid = zbuf[pix] & 0xFFFFFFFF
    px, py = (pix % width).double(), (pix // width).double()
    weights, depth = _perspective_weights(_edge_barycentrics(px, py, tri[fid]), tri_z[fid])
    fv = faces[fid]  # (P, 3)

    def interp(attr: np.ndarray) -> torch.Tensor:
        a = torch.from_numpy(attr).double()[fv]  # (P, 3, C)
        return (weights[..., None] * a).sum(1)

    rgb = shade(interp(scene.normals), interp(scene.positions), interp(scene.colors),
                torch.from_numpy(scene.specular).double()[fv[:, 0]], scene.light)
    color = torch.zeros(height * width, 3, dtype=torch.uint8)
    color[pix] = torch.round(rgb * 255).to(torch.uint8)
    depth_img = torch.zeros(height * width, dtype=torch.float32)
    depth_img[pix] = depth.float()
    labels = torch.full((height * width,), -1, dtype=torch.int16)
    labels[pix] = torch.from_numpy(scene.labels).round().to(torch.int16)[fv[:, 0]]
    return (color.reshape(height, width, 3).numpy(), depth_img.reshape(height, width).numpy(),
            labels.reshape(height, width).numpy())
