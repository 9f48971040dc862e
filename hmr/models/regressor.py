"""The regressor: backbone + head + the mean initialisation (buffers), and its factory from a config."""
from __future__ import annotations

import copy
import logging
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from hmr.models.backbone import build_backbone
from hmr.models.cliff_head import CliffHead
from hmr.models.pretrained import check_builtin_weights, resolve_pretrained
from hmr.models.transformer_head import TransformerHead

logger = logging.getLogger(__name__)

#: SPIN's mean weak-perspective crop camera (s, tx, ty) from smpl_mean_params.npz.
DEFAULT_INIT_CAM = (0.9, 0.0, 0.0)

#: Every key ``build_regressor`` understands, with its default. ``iterations: None`` = 3 (cliff) / 1 (transformer).
DEFAULT_MODEL_CONFIG: Dict[str, Any] = {
    "backbone": "resnet50",
    "backbone_checkpoint": None,
    "pretrained": False,
    "freeze_backbone": False,
    "checkpoint_prefix": None,
    "input_size": [256, 192],
    "pooling": "avg",
    "flatten": {"stride": 16, "channels": 32},
    "heatmaps": {"enabled": False, "stride": 8},
    "landmarks": {"train_from": None},
    "head": "cliff",
    "iterations": None,
    "use_bbox_info": True,
    "hidden": 1024,
    "dropout": 0.5,
    "activation": "none",
    "transformer": {"dim": 512, "depth": 2, "heads": 8, "mlp_ratio": 4.0, "dropout": 0.0},
}
HEADS = ("cliff", "transformer")

TensorLike = Union[torch.Tensor, Sequence[float]]


class Regressor(nn.Module):
    """Image crop + bbox_info -> raw rotation parameters, shape and crop camera.

    ``forward(img (B, 3, H, W), bbox_info (B, 3))`` returns ``pose_params`` (B, J, dim) (final iteration,
    raw: map with ``representation.train_matrix`` / ``inference_rotation``), ``betas`` (B, num_betas),
    ``cam`` (B, 3) = weak-perspective (s, tx, ty) in the normalised crop [-1, 1] (CLIFF/SPIN), and
    ``iterations``: one such dict per IEF step; with a heatmap head also ``heatmaps`` (B, K, h, w) logits
    (see :mod:`hmr.models.keypoint_head`). The mean initialisation lives in the buffers
    ``init_pose_params`` (J, dim), ``init_betas`` (num_betas), ``init_cam`` (3).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, init_pose_params: torch.Tensor,
                 init_betas: torch.Tensor, init_cam: torch.Tensor) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.register_buffer("init_pose_params", init_pose_params.detach().clone().float())
        self.register_buffer("init_betas", init_betas.detach().clone().float())
        self.register_buffer("init_cam", init_cam.detach().clone().float())

    @property
    def num_joints(self) -> int:
        return self.init_pose_params.shape[0]

    @property
    def rep_dim(self) -> int:
        return self.init_pose_params.shape[1]

    @property
    def num_betas(self) -> int:
        return self.init_betas.shape[0]

    def forward(self, img: torch.Tensor, bbox_info: Optional[torch.Tensor] = None) -> Dict[str, Any]:
        batch = img.shape[0]
        init = {
            "pose_params": self.init_pose_params.expand(batch, -1, -1),
            "betas": self.init_betas.expand(batch, -1),
            "cam": self.init_cam.expand(batch, -1),
        }
        features = self.backbone(img)
        extra = {}
        if isinstance(features, tuple):
            features, extra["heatmaps"] = features
        if getattr(self.backbone, "landmarks", False):  # a landmark network's own 2D landmarks (loss.landmarks)
            extra["landmarks_2d"] = self.backbone.model.image_landmarks(features)
        history = self.head(features, bbox_info, init)
        return {**history[-1], "iterations": history, **extra}

    @property
    def heatmap_head(self):
        """The backbone's :class:`~hmr.models.keypoint_head.HeatmapHead`, or None."""
        return getattr(self.backbone, "keypoints", None)


def build_regressor(model_cfg: Mapping[str, Any], num_joints: int, rep_dim: int, num_betas: int = 10,
                    init_pose_params: Optional[torch.Tensor] = None, init_betas: Optional[TensorLike] = None,
                    init_cam: Optional[TensorLike] = None,
                    encode: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                    init_global_orient: Optional[torch.Tensor] = None, num_keypoints: int = 0) -> Regressor:
    """Build a :class:`Regressor` from ``model_cfg`` (keys and defaults: :data:`DEFAULT_MODEL_CONFIG`).

    Mean initialisation: ``init_pose_params`` (J, dim) as given, or ``encode(R)`` of identity rotations
    ``R`` (J, 3, 3) whose joint 0 is ``init_global_orient`` (3, 3) when given (pass
    ``representation.encode``), else zeros. ``init_betas`` defaults to zeros, ``init_cam`` to :data:`DEFAULT_INIT_CAM`.
    ``num_keypoints``: the 2D keypoint count of the heatmap head (needed when ``heatmaps.enabled``).
    """
    cfg = resolve_model_config(model_cfg)
    pose0 = mean_pose_params(num_joints, rep_dim, init_pose_params, encode, init_global_orient)
    betas0 = _vector("init_betas", torch.zeros(num_betas) if init_betas is None else init_betas, num_betas)
    cam0 = _vector("init_cam", DEFAULT_INIT_CAM if init_cam is None else init_cam, 3)

    spatial = cfg["head"] == "transformer"
    if cfg["heatmaps"]["enabled"] and num_keypoints <= 0:
        raise ValueError("model.heatmaps.enabled needs the number of 2D keypoints (num_keypoints > 0)")
    builtin, checkpoint = resolve_pretrained(cfg["pretrained"], cfg["backbone_checkpoint"])
    if builtin:
        check_builtin_weights(cfg["backbone"])
    backbone, feature_dim = build_backbone(cfg["backbone"], checkpoint, cfg["input_size"],
                                           pretrained=builtin, freeze=bool(cfg["freeze_backbone"]),
                                           spatial=spatial, checkpoint_prefix=cfg["checkpoint_prefix"],
                                           pooling=cfg["pooling"], flatten_stride=int(cfg["flatten"]["stride"]),
                                           flatten_channels=int(cfg["flatten"]["channels"]),
                                           heatmap_keypoints=num_keypoints if cfg["heatmaps"]["enabled"] else 0,
                                           heatmap_stride=int(cfg["heatmaps"]["stride"]),
                                           landmarks_train_from=cfg["landmarks"]["train_from"])
    sizes = dict(num_joints=num_joints, rep_dim=rep_dim, num_betas=num_betas,
                 use_bbox_info=bool(cfg["use_bbox_info"]))
    if spatial:
        t = cfg["transformer"]
        head: nn.Module = TransformerHead(feature_dim, iterations=cfg["iterations"] or 1, dim=int(t["dim"]),
                                          depth=int(t["depth"]), heads=int(t["heads"]),
                                          mlp_ratio=float(t["mlp_ratio"]), dropout=float(t["dropout"]), **sizes)
    else:
        head = CliffHead(feature_dim, iterations=cfg["iterations"] or 3, hidden=int(cfg["hidden"]),
                         dropout=float(cfg["dropout"]), activation=cfg["activation"], **sizes)
    return Regressor(backbone, head, pose0, betas0, cam0)


def resolve_model_config(model_cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """``DEFAULT_MODEL_CONFIG`` updated with ``model_cfg``; unknown keys and heads raise ``ValueError``."""
    cfg = copy.deepcopy(DEFAULT_MODEL_CONFIG)
    for key, value in dict(model_cfg).items():
        if key not in cfg:
            raise ValueError(f"unknown model config key {key!r}; known: {sorted(cfg)}")
        if key in ("transformer", "flatten", "heatmaps", "landmarks"):
            unknown = set(dict(value or {})) - set(cfg[key])
            if unknown:
                raise ValueError(f"unknown model.{key} keys {sorted(unknown)}; known: {sorted(cfg[key])}")
            cfg[key].update(dict(value or {}))
        else:
            cfg[key] = value
    if cfg["head"] not in HEADS:
        raise ValueError(f"model.head must be one of {HEADS}, got {cfg['head']!r}")
    return cfg


def mean_pose_params(num_joints: int, rep_dim: int, init_pose_params: Optional[torch.Tensor] = None,
                     encode: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                     init_global_orient: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The (J, dim) mean pose parameters: given directly, encoded from identity rotations (joint 0 =
    ``init_global_orient``), or zeros (logged) when neither is given (representations without ``encode``)."""
    if init_pose_params is None and encode is None:
        logger.warning("no init_pose_params and no encode: the pose estimate starts from zeros (%d, %d)",
                       num_joints, rep_dim)
        init_pose_params = torch.zeros(num_joints, rep_dim)
    if init_pose_params is None:
        rotations = torch.eye(3).repeat(num_joints, 1, 1)
        if init_global_orient is not None:
            orient = torch.as_tensor(init_global_orient, dtype=torch.float32)
            if orient.shape != (3, 3):
                raise ValueError(f"init_global_orient must be a (3, 3) rotation matrix, got {tuple(orient.shape)}")
            rotations[0] = orient
        init_pose_params = encode(rotations)
    pose = torch.as_tensor(init_pose_params, dtype=torch.float32)
    if pose.shape != (num_joints, rep_dim):
        raise ValueError(f"mean pose parameters must be ({num_joints}, {rep_dim}) (J, dim), got {tuple(pose.shape)}")
    if not torch.isfinite(pose).all():
        raise ValueError("mean pose parameters contain NaN or inf")
    return pose


def _vector(name: str, value: TensorLike, size: int) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float32)
    if tensor.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or inf")
    return tensor
