"""Build the pieces a run needs from a config: body model, representation, regressor (with its mean
initialisation) — shared by training, evaluation and the demo so a checkpoint rebuilds the same model."""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Tuple

import torch

import hmr.body
import hmr.rotations
from hmr.engine.forward import mean_camera_scale
from hmr.models import build_regressor
from hmr.rotations import axis_angle_to_matrix

log = logging.getLogger(__name__)


def build_body_model(cfg: Mapping[str, Any]):
    """The body model named in ``cfg.body_model`` (``name`` plus optional loader keyword arguments)."""
    section = dict(cfg["body_model"])
    name = section.pop("name")
    section.pop("keypoints", None)
    section.pop("root_joints", None)
    return hmr.body.load(name, **section)


def build_representation(cfg: Mapping[str, Any]):
    """The rotation representation named in ``cfg.representation`` (``name`` + ``options``)."""
    section = cfg["representation"]
    return hmr.rotations.get(section["name"], **dict(section.get("options") or {}))


def mean_init_pose(num_joints: int, global_orient_axis_angle) -> torch.Tensor:
    """(J, 3, 3) initial rotations: identity for every joint, the given global orientation for joint 0.

    For a body the default global orientation is a half turn about x: the model's y-up/z-forward frame
    seen upright and facing an OpenCV camera (y down, z forward).
    """
    rot = torch.eye(3, dtype=torch.float64).repeat(num_joints, 1, 1)
    aa = torch.as_tensor(global_orient_axis_angle, dtype=torch.float64).reshape(1, 3)
    rot[0] = axis_angle_to_matrix(aa)[0]
    return rot.float()


def build_model(cfg: Mapping[str, Any], body_model, representation) -> torch.nn.Module:
    """Regressor whose iterative estimate starts at the mean pose, zero shape and a camera that frames the
    template (see :func:`mean_init_pose`, :func:`hmr.engine.forward.mean_camera_scale`)."""
    model_cfg = dict(cfg["model"])
    init_orient = model_cfg.pop("init_global_orient", [math.pi, 0.0, 0.0])
    init_rot = mean_init_pose(body_model.num_joints, init_orient)
    try:
        init_pose_params = representation.encode(init_rot)
    except NotImplementedError:
        init_pose_params = None
        log.warning("representation %s cannot encode the mean pose; the head starts from its own default",
                    representation.name)
    init_cam = torch.tensor([mean_camera_scale(body_model), 0.0, 0.0])
    keypoint_set, _ = keypoint_settings(cfg, body_model)
    return build_regressor(model_cfg, num_joints=body_model.num_joints, rep_dim=representation.dim,
                           num_betas=body_model.num_betas, init_pose_params=init_pose_params,
                           init_betas=torch.zeros(body_model.num_betas), init_cam=init_cam,
                           num_keypoints=body_model.num_keypoints(keypoint_set))


def keypoint_settings(cfg: Mapping[str, Any], body_model) -> Tuple[str, Tuple[int, ...]]:
    """(keypoint set supervised in 2D/3D, root joints used for 3D alignment) for this body model kind."""
    section = cfg["body_model"]
    default_set, default_root = ("spin24", (2, 3)) if body_model.kind == "body" else ("freihand21", (0,))
    return section.get("keypoints", default_set), tuple(section.get("root_joints", default_root))
