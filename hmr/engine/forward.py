"""From regressor outputs to matrices, meshes, keypoints and full-frame projections — shared by training,
evaluation and the demo so that every path makes the same choices.

Where orthogonalization happens is explicit (PRoM Table 3a): each of the three consumers — the rotation loss,
forward kinematics and inference/export — takes either the representation's training-time matrix (``"train"``,
the raw 3×3 for PRoM) or its inference-time rotation (``"inference"``, SVD for PRoM).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from hmr.geometry.camera import camera_matrix, crop_to_full_camera, perspective_projection

MAPPINGS = ("train", "inference")
ANNEAL_KINDS = ("none", "switch", "linear")
ANNEAL_TARGETS = ("forward_kinematics", "rotation_loss")


@dataclass(frozen=True)
class OrthoSwitches:
    """Which mapping feeds the rotation loss, forward kinematics and inference (PRoM Table 3a)."""

    rotation_loss: str = "train"
    forward_kinematics: str = "train"
    inference: str = "inference"

    def __post_init__(self) -> None:
        for field_name in ("rotation_loss", "forward_kinematics", "inference"):
            value = getattr(self, field_name)
            if value not in MAPPINGS:
                raise ValueError(f"representation.{field_name} must be one of {MAPPINGS}, got {value!r}")

    @classmethod
    def from_config(cls, cfg: Optional[Mapping[str, str]]) -> "OrthoSwitches":
        cfg = dict(cfg or {})
        return cls(rotation_loss=cfg.get("rotation_loss", "train"),
                   forward_kinematics=cfg.get("forward_kinematics", "train"),
                   inference=cfg.get("inference", "inference"))


@dataclass(frozen=True)
class Annealing:
    """Projection annealing (issue 9, fix 2): late in training, the consumers in ``targets`` move from the
    training-time matrix to the inference rotation, ``(1 − w) · train + w · inference``.

    ``switch``: w = 0 before ``start`` (a fraction of train.steps), 1 from there on. ``linear``: w ramps from 0
    at ``start`` to 1 at ``end``. ``none`` (default): w = 0 always — plain PRoM, no SVD in training.
    """

    kind: str = "none"
    start: float = 0.7
    end: float = 1.0
    targets: Tuple[str, ...] = ("forward_kinematics",)

    def __post_init__(self) -> None:
        if self.kind not in ANNEAL_KINDS:
            raise ValueError(f"representation.anneal.kind must be one of {ANNEAL_KINDS}, got {self.kind!r}")
        if not 0.0 <= self.start <= 1.0 or not 0.0 <= self.end <= 1.0 or (self.kind == "linear"
                                                                          and self.end <= self.start):
            raise ValueError(f"representation.anneal: need 0 <= start < end <= 1 (fractions of train.steps), "
                             f"got start={self.start}, end={self.end}")
        bad = set(self.targets) - set(ANNEAL_TARGETS)
        if bad or not self.targets:
            raise ValueError(f"representation.anneal.targets must be a non-empty subset of {ANNEAL_TARGETS}, "
                             f"got {list(self.targets)}")

    @classmethod
    def from_config(cls, cfg: Optional[Mapping]) -> "Annealing":
        cfg = dict(cfg or {})
        targets = cfg.get("targets", ["forward_kinematics"])
        return cls(kind=str(cfg.get("kind", "none")), start=float(cfg.get("start", 0.7)),
                   end=float(cfg.get("end", 1.0)),
                   targets=(targets,) if isinstance(targets, str) else tuple(targets))

    def weight(self, step: int, total_steps: int) -> float:
        """Blend weight w in [0, 1] at ``step`` (0-based) of ``total_steps``."""
        if self.kind == "none" or total_steps <= 0:
            return 0.0
        progress = step / total_steps
        if self.kind == "switch":
            return 1.0 if progress >= self.start else 0.0
        return float(min(1.0, max(0.0, (progress - self.start) / (self.end - self.start))))

    def blend(self, step: int, total_steps: int) -> Dict[str, float]:
        """{consumer: w} for :func:`decode_outputs` (empty when w = 0)."""
        w = self.weight(step, total_steps)
        return {target: w for target in self.targets} if w > 0 else {}


def rotation_matrices(representation, pose_params: Tensor, mapping: str) -> Tensor:
    """(B, J, dim) parameters → (B, J, 3, 3) through the named mapping."""
    if mapping == "train":
        return representation.train_matrix(pose_params)
    if mapping == "inference":
        return representation.inference_rotation(pose_params)
    raise ValueError(f"unknown mapping {mapping!r}; expected one of {MAPPINGS}")


def full_frame_camera(cam: Tensor, batch: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Full-frame translation and intrinsics from the crop camera and the batch's bbox/focal/image size."""
    transl = crop_to_full_camera(cam, batch["center"], batch["scale"], batch["focal"], batch["img_size"])
    K = camera_matrix(batch["focal"].to(cam.dtype), batch["img_size"].to(cam.dtype))
    return {"transl": transl, "K": K}


def body_forward(body_model, rotmats: Tensor, betas: Tensor, transl: Optional[Tensor],
                 keypoint_sets: Mapping[str, str]) -> Dict[str, Tensor]:
    """Forward kinematics + requested keypoint sets, e.g. ``{"keypoints_3d": "spin24"}``.

    Vertices and joints are returned root-relative to the model origin (``transl`` not applied), and also
    in the camera frame when ``transl`` is given (``*_cam`` keys).
    """
    out = body_model(full_pose=rotmats, betas=betas)
    result = {"vertices": out.vertices, "joints": out.joints}
    for key, set_name in keypoint_sets.items():
        result[key] = body_model.keypoints(out.vertices, out.joints, set_name)
    if transl is not None:
        shift = transl[:, None, :]
        result["vertices_cam"] = out.vertices + shift
        for key in list(keypoint_sets):
            result[key + "_cam"] = result[key] + shift
    return result


def predict(model, representation, body_model, batch: Mapping[str, Tensor], switches: OrthoSwitches,
            keypoint_set: str, stage: str) -> Dict[str, Tensor]:
    """Run the regressor on a batch, then :func:`decode_outputs`."""
    out = model(batch["img"], batch["bbox_info"])
    return decode_outputs(out, representation, body_model, batch, switches, keypoint_set, stage)


def blended_matrices(representation, pose_params: Tensor, mapping: str, weight: float) -> Tensor:
    """The named mapping blended towards the inference rotation: ``(1 − w) · mapping + w · inference``."""
    base = rotation_matrices(representation, pose_params, mapping)
    if weight <= 0.0 or mapping == "inference":
        return base
    projected = representation.inference_rotation(pose_params)
    return projected if weight >= 1.0 else (1.0 - weight) * base + weight * projected


def decode_outputs(out: Mapping[str, Tensor], representation, body_model, batch: Mapping[str, Tensor],
                   switches: OrthoSwitches, keypoint_set: str, stage: str,
                   blend: Optional[Mapping[str, float]] = None, keypoint_model=None) -> Dict[str, Tensor]:
    """Build everything the losses (``stage="train"``) or the metrics and exports (``stage="inference"``) need
    from the regressor outputs. ``blend`` ({consumer: w}, train stage only) applies projection annealing
    (see :class:`Annealing`). ``keypoint_model`` (a :class:`hmr.fitting.keypoint_model.KeypointModel` of
    ``keypoint_set``): the keypoints come from it without skinning the mesh (same values), and ``vertices`` /
    ``joints`` are left out — for training steps whose losses need no vertex.

    Keys: ``pose_params``, ``betas``, ``cam``, ``rotmats`` (what FK used), ``rotmats_loss`` (train stage),
    ``vertices``, ``joints``, ``keypoints_3d`` (model origin), ``transl``, ``K``, ``keypoints_2d`` (pixels, full frame).
    """
    pose_params, betas, cam = out["pose_params"], out["betas"], out["cam"]
    blend = dict(blend or {}) if stage == "train" else {}
    mapping = switches.forward_kinematics if stage == "train" else switches.inference
    rotmats = blended_matrices(representation, pose_params, mapping, blend.get("forward_kinematics", 0.0))
    camera = full_frame_camera(cam, batch)
    if keypoint_model is None:
        body = body_forward(body_model, rotmats, betas, camera["transl"], {"keypoints_3d": keypoint_set})
    else:
        keypoints = keypoint_model(rotmats, betas)
        body = {"keypoints_3d": keypoints, "keypoints_3d_cam": keypoints + camera["transl"][:, None, :]}
    result = {
        "pose_params": pose_params, "betas": betas, "cam": cam, "rotmats": rotmats,
        "transl": camera["transl"], "K": camera["K"], **body,
        "keypoints_2d": perspective_projection(body["keypoints_3d_cam"], camera["K"]),
    }
    if stage == "train":
        same = (switches.rotation_loss == switches.forward_kinematics
                and blend.get("rotation_loss", 0.0) == blend.get("forward_kinematics", 0.0))
        result["rotmats_loss"] = rotmats if same else blended_matrices(
            representation, pose_params, switches.rotation_loss, blend.get("rotation_loss", 0.0))
    return result


def mean_camera_scale(body_model, fill: float = 0.8) -> float:
    """Initial weak-perspective scale so the rest-pose template spans ``fill`` of the [-1, 1] crop."""
    with torch.no_grad():
        eye = torch.eye(3, device=next(body_model.buffers()).device)
        out = body_model(full_pose=eye.expand(1, body_model.num_joints, 3, 3).clone())
        extent = (out.vertices[0].max(dim=0).values - out.vertices[0].min(dim=0).values).max()
    return float(2.0 * fill / extent.clamp(min=1e-6))
