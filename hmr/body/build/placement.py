"""Put chosen vertices of a derived (decimated) mesh exactly on keypoint targets of the original surface.

Every vertex of the derived mesh is a point of the original surface (a row of the (V', V) interpolation matrix
``decimate`` returns). Giving a vertex the target's row instead moves it along the surface onto the target, and
its skinning weights, shape directions and every other interpolated quantity move with it.

Which vertex moves: the nearest one (among ``CANDIDATES``, not moved already) whose move keeps every triangle
around it facing outwards: the cosine between a triangle's normal and the surface normal at its centre stays at
least ``min(before, MIN_AGREEMENT)`` (the decimated mesh has slivers that a millimetre's move would turn over).
A target with no such vertex is an error, as is a move longer than ``MAX_MOVE``. On the shipped body the moves
are 0.2-13 mm (manifest: ``keypoint_vertex_moves_mm``).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
from scipy import sparse

from hmr.body.build.decimate import surface_interpolation
from hmr.body.build.symmetry import SurfacePoint, evaluate

CANDIDATES = 16
MIN_AGREEMENT = 0.3
MAX_MOVE = 0.03  # metres


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    normals = np.zeros_like(vertices)
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)


class _Surface:
    """Normals of the original surface, to judge how well a derived triangle follows it."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        self.vertices, self.faces, self.normals = vertices, faces, _vertex_normals(vertices, faces)

    def agreement(self, triangles: np.ndarray) -> np.ndarray:
        """Cosine between each triangle's normal (T, 3, 3) and the surface normal nearest its centre (0: degenerate)."""
        normal = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        length = np.linalg.norm(normal, axis=1)
        surface = np.asarray(surface_interpolation(triangles.mean(axis=1), self.vertices, self.faces) @ self.normals)
        surface /= np.maximum(np.linalg.norm(surface, axis=1, keepdims=True), 1e-30)
        cos = np.einsum("tc,tc->t", normal, surface) / np.maximum(length, 1e-30)
        return np.where(length > 1e-12, cos, 0.0)


def place_keypoint_vertices(interp: sparse.csr_matrix, full_mean: np.ndarray, full_faces: np.ndarray,
                            faces: np.ndarray, targets: Dict[str, SurfacePoint],
                            ) -> Tuple[sparse.csr_matrix, Dict[str, int], Dict[str, float]]:
    """Move one vertex of the derived mesh (``faces``, interpolation ``interp`` from ``full_mean``) onto each
    target (a surface point of ``full_mean`` / ``full_faces``), in order. Returns the new interpolation, the
    vertex of each target and how far it moved (mm). Raises ValueError when a target cannot be served."""
    surface = _Surface(full_mean, full_faces)
    rows = interp.tolil(copy=True)
    positions = np.asarray(interp @ full_mean)
    incident: List[List[int]] = [[] for _ in range(len(positions))]
    for f, face in enumerate(faces):
        for v in face:
            incident[int(v)].append(f)
    chosen: Dict[str, int] = {}
    moved_mm: Dict[str, float] = {}
    for name, (ids, weights) in targets.items():
        goal = evaluate((ids, weights), full_mean)
        distance = np.linalg.norm(positions - goal, axis=1)
        free = [int(v) for v in np.argsort(distance, kind="stable") if int(v) not in chosen.values()]
        for vertex in free[:CANDIDATES]:
            if distance[vertex] > MAX_MOVE:
                break
            around = faces[incident[vertex]]
            before = surface.agreement(positions[around]).min()
            trial = positions.copy()
            trial[vertex] = goal
            if surface.agreement(trial[around]).min() >= min(before, MIN_AGREEMENT):
                break
        else:
            vertex = -1
        if vertex < 0 or distance[vertex] > MAX_MOVE:
            raise ValueError(f"keypoint {name}: no vertex within {MAX_MOVE * 1000:.0f} mm among the {CANDIDATES} "
                             f"nearest can be moved onto its target without turning a triangle against the surface")
        chosen[name], moved_mm[name] = vertex, float(distance[vertex] * 1000)
        positions[vertex] = goal
        row = np.zeros(interp.shape[1])
        row[list(ids)] = weights
        rows[vertex] = row
    return rows.tocsr(), chosen, moved_mm
