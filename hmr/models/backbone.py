"""Backbone factory: timm image encoders and the offline-pretrained networks of :mod:`hmr.models.pretrained`
(EfficientNet-Lite, MediaPipe's BlazePose / hand encoders), returning a pooled feature vector, a spatial feature
grid, a flattened low-resolution grid (``pooling="flatten"``: global average pooling throws away where things
are; see docs/cpu_training.md), or a MediaPipe landmark network's own keypoint predictions (``pooling="landmarks"``,
:class:`hmr.models.mediapipe.MediaPipeLandmarkFeatures`).

Weights are never downloaded: ``pretrained=True`` reads the built-in offline weights (installed by the setup
script), ``checkpoint`` a local file (see :mod:`hmr.models.checkpoint`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import timm
import torch
from torch import nn
from timm.models.resnet import BasicBlock, ResNet

from hmr.models.checkpoint import load_backbone_checkpoint
from hmr.models.keypoint_head import HeatmapHead
from hmr.models.pretrained import PRETRAINED_BACKBONES, create_offline_backbone, is_offline_backbone

logger = logging.getLogger(__name__)

#: Names tested by this project; any other timm model name is passed to timm as well.
KNOWN_BACKBONES: Tuple[str, ...] = (
    "resnet_tiny", "cnn_tiny", "resnet18", "resnet34", "resnet50",
    "vit_small_patch16_224", "vit_base_patch16_224", "hrnet_w48",
) + PRETRAINED_BACKBONES
_TINY_NAMES = ("resnet_tiny", "cnn_tiny")
POOLINGS = ("avg", "flatten", "landmarks")


class Backbone(nn.Module):
    """A timm encoder behind one interface.

    ``forward(img (B, 3, H, W))`` returns pooled features ``(B, C)`` or, when built with ``spatial=True``,
    a feature grid ``(B, C, h, w)`` (for attention heads: ``grid.flatten(2).transpose(1, 2)`` gives the
    ``(B, h*w, C)`` tokens). ``feature_dim`` is ``C``. Built with a ``flatten`` module (see
    :class:`FlattenGrid`), it returns that module's ``(B, feature_dim)`` vector instead of the pooled one; with
    a ``keypoints`` head (:class:`hmr.models.keypoint_head.HeatmapHead`) as well, it returns
    ``(vector + 2K soft-argmax coordinates, heatmap logits (B, K, h, w))``.

    ``input_affine`` ``(scale (3,), shift (3,))`` maps the project's ImageNet-normalised crops to the input
    convention of pretrained weights (non-persistent buffers). ``frozen``: the encoder's weights get no gradient
    and its batch-norm statistics stay fixed (``train()`` keeps it in eval mode); heads on top still train.
    """

    def __init__(self, model: nn.Module, name: str, feature_dim: int, spatial: bool,
                 input_size: Tuple[int, int], is_vit: bool, flatten: Optional["FlattenGrid"] = None,
                 keypoints: Optional[HeatmapHead] = None,
                 input_affine: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, frozen: bool = False) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.feature_dim = feature_dim
        self.spatial = spatial
        self.input_size = input_size
        self.is_vit = is_vit
        self.flatten = flatten
        self.keypoints = keypoints
        scale, shift = input_affine if input_affine is not None else (torch.ones(3), torch.zeros(3))
        self.register_buffer("input_scale", scale.reshape(1, 3, 1, 1).float(), persistent=False)
        self.register_buffer("input_shift", shift.reshape(1, 3, 1, 1).float(), persistent=False)
        self.has_input_affine = input_affine is not None
        self.frozen = frozen
        #: Set by the trainer while it feeds cached encoder maps (hmr.engine.feature_cache) instead of images.
        self.features_input = False
        #: The model returns landmark features (hmr.models.mediapipe.MediaPipeLandmarkFeatures).
        self.landmarks = hasattr(model, "num_landmarks")
        #: A frozen landmark network with a trainable top (``model.landmarks.train_from``).
        self.trainable_top = frozen and getattr(model, "top", None) is not None
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()
            if self.trainable_top:
                self.model.top.requires_grad_(True)

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def encoder_maps(self, img: torch.Tensor) -> torch.Tensor:
        """What the frozen encoder gives the trainable read-out, for caching (no gradient): the map that the
        flatten read-out consumes, or the landmark feature vector (``pooling="landmarks"``)."""
        if self.keypoints is not None or (self.flatten is None and not self.landmarks):
            raise ValueError("cached encoder features need model.pooling=flatten (without heatmaps) or landmarks")
        with torch.no_grad():
            img = img * self.input_scale + self.input_shift if self.has_input_affine else img
            if self.landmarks:
                return self.model.frozen_part(img)
            return self.model.forward_intermediates(img, indices=[self.flatten.stage], intermediates_only=True)[-1]

    def forward(self, img: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        if self.features_input:  # a cached encoder map or landmark vector, see encoder_maps
            if self.landmarks:
                return self.model.trainable_part(img)
            return img if self.flatten is None else self.flatten(img)
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"backbone {self.name!r} expects images (B, 3, H, W), got {tuple(img.shape)}")
        if self.is_vit and tuple(img.shape[-2:]) != self.input_size:
            raise ValueError(f"backbone {self.name!r} was built for input size (H, W) = {self.input_size}, "
                             f"got {tuple(img.shape[-2:])}; set model.input_size to the crop size")
        if self.has_input_affine:
            img = img * self.input_scale + self.input_shift
        if self.flatten is not None:
            return self._flattened(img)
        with torch.set_grad_enabled(torch.is_grad_enabled() and (self.trainable_top or not self.frozen)):
            features = self.model(img) if not self.spatial else self.model.forward_features(img)
        if not self.spatial or not self.is_vit:
            return features
        tokens = features[:, self.model.num_prefix_tokens:]
        grid_h, grid_w = self.model.patch_embed.grid_size
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], grid_h, grid_w)

    def _flattened(self, img: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Flattened coarse grid; with a heatmap head also its soft-argmax coordinates (appended to the vector)
        and the heatmap logits: ``(features (B, feature_dim), logits (B, K, h, w))``."""
        stages = [self.flatten.stage] if self.keypoints is None else [self.keypoints.fine_stage, self.flatten.stage]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            maps = self.model.forward_intermediates(img, indices=stages, intermediates_only=True)
        features = self.flatten(maps[-1])
        if self.keypoints is None:
            return features
        logits = self.keypoints(maps[0], maps[-1])
        return torch.cat([features, self.keypoints.coordinates(logits).flatten(1)], dim=1), logits


def build_backbone(name: str, checkpoint: Optional[Union[str, Path]] = None,
                   input_size: Sequence[int] = (256, 192), spatial: bool = False,
                   checkpoint_prefix: Optional[str] = None, pooling: str = "avg", flatten_stride: int = 16,
                   flatten_channels: int = 32, heatmap_keypoints: int = 0,
                   heatmap_stride: int = 8, pretrained: bool = False,
                   freeze: bool = False, landmarks_train_from: Optional[str] = None) -> Tuple[Backbone, int]:
    """Build a backbone by name and return ``(module, feature_dim)``.

    ``name``: one of :data:`KNOWN_BACKBONES` or any timm model name. ``input_size``: crop (H, W); ViTs are
    built for exactly this size (HMR 2.0 / ViTPose style: no class token, mean-pooled patch tokens).
    ``spatial``: return the ``(B, C, h, w)`` grid instead of the pooled vector. ``checkpoint``: a local file
    read with ``torch.load(weights_only=True)``; ``checkpoint_prefix`` (e.g. ``"backbone."``) selects and
    strips a key prefix, ``None`` detects common ones. ``pooling``: ``"avg"`` (the model's own pooled vector)
    or ``"flatten"``: the feature map at ``flatten_stride`` reduced to ``flatten_channels`` by a 1×1
    convolution and flattened (:class:`FlattenGrid`); ignored when ``spatial``; or ``"landmarks"``: a MediaPipe
    network's own keypoint predictions at its native input size (:class:`hmr.models.mediapipe.MediaPipeLandmarkFeatures`). ``heatmap_keypoints`` > 0
    (flatten pooling only) adds a heatmap head for that many 2D keypoints at ``heatmap_stride``; the returned
    ``feature_dim`` then includes their 2K coordinates. ``pretrained``: load the built-in offline weights of
    ``name`` (:data:`hmr.models.pretrained.PRETRAINED_BACKBONES`). ``freeze``: keep the encoder's weights and
    batch-norm statistics fixed (only what sits on top trains). ``landmarks_train_from`` (landmarks pooling,
    frozen): the landmark network's ops after this tensor train (``MediaPipeLandmarkFeatures(train_from=...)``).
    """
    input_size = _as_size(input_size)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if pretrained and checkpoint is not None:
        raise ValueError("give either pretrained=True (built-in weights) or a checkpoint file, not both")
    if pretrained and not is_offline_backbone(name):
        raise ValueError(f"backbone {name!r} has no built-in offline weights; those that do: "
                         f"{', '.join(PRETRAINED_BACKBONES)} (or pass a local checkpoint file)")
    if landmarks_train_from is not None and (pooling != "landmarks" or not freeze):
        raise ValueError("model.landmarks.train_from trains the end of a frozen landmark network: it needs "
                         "model.pooling=landmarks and model.freeze_backbone=true")
    if pooling == "landmarks":
        return _landmark_backbone(name, checkpoint, input_size, spatial, pretrained, freeze, landmarks_train_from)
    affine = None
    if is_offline_backbone(name):
        model, affine = create_offline_backbone(name, pretrained)
        is_vit = False
    else:
        model, is_vit = _create_timm_model(name, input_size)
    if checkpoint is not None:
        load_backbone_checkpoint(model, checkpoint, prefix=checkpoint_prefix)
    _check_freezable(name, freeze, pretrained or checkpoint is not None)
    built = dict(input_affine=affine, frozen=freeze)
    if heatmap_keypoints and (pooling != "flatten" or spatial):
        raise ValueError("keypoint heatmaps need model.pooling=flatten and the cliff head")
    if pooling == "flatten" and not spatial:
        flat = FlattenGrid.for_model(model, name, input_size, flatten_stride, flatten_channels)
        heatmaps = None
        if heatmap_keypoints:
            fine_stage = stage_with_stride(model, name, heatmap_stride)
            if fine_stage >= flat.stage:
                raise ValueError(f"heatmap stride {heatmap_stride} must be finer than the flatten stride {flatten_stride}")
            fine, coarse = _probe_maps(model, input_size, [fine_stage, flat.stage])
            heatmaps = HeatmapHead(fine_stage, fine.shape[1], coarse.shape[1], heatmap_keypoints,
                                   (fine.shape[2], fine.shape[3]), heatmap_stride, input_size)
        feature_dim = flat.out_dim + 2 * heatmap_keypoints
        logger.info("backbone %s: stride-%d grid flattened to %d features%s, %.1fM parameters", name,
                    flatten_stride, flat.out_dim, f" + {heatmap_keypoints} heatmap keypoints" if heatmaps else "",
                    sum(p.numel() for p in model.parameters()) / 1e6)
        return Backbone(model, name, feature_dim, False, input_size, is_vit, flatten=flat,
                        keypoints=heatmaps, **built), feature_dim
    # Pooled features can be wider than the feature map when a model has a pre-logits head (MobileNetV3:
    # 576-channel map, 1024-d pooled vector); timm calls that width head_hidden_size.
    feature_dim = int(model.num_features if spatial else getattr(model, "head_hidden_size", None) or model.num_features)
    logger.info("backbone %s: %d features, %.1fM parameters", name, feature_dim,
                sum(p.numel() for p in model.parameters()) / 1e6)
    return Backbone(model, name, feature_dim, spatial, input_size, is_vit, **built), feature_dim


def _check_freezable(name: str, freeze: bool, has_weights: bool) -> None:
    if freeze and not has_weights:
        raise ValueError(f"freezing backbone {name!r} without pretrained weights would train nothing in it; "
                         "set model.pretrained")


def _landmark_backbone(name: str, checkpoint: Optional[Union[str, Path]], input_size: Tuple[int, int],
                       spatial: bool, pretrained: bool, freeze: bool,
                       train_from: Optional[str] = None) -> Tuple[Backbone, int]:
    """``pooling="landmarks"``: a MediaPipe landmark network's predictions as the feature vector."""
    from hmr.models.mediapipe import ENCODERS, MediaPipeLandmarkFeatures

    if name not in ENCODERS:
        raise ValueError(f"model.pooling=landmarks needs a MediaPipe landmark network ({', '.join(ENCODERS)}), "
                         f"got backbone {name!r}")
    if spatial:
        raise ValueError("model.pooling=landmarks gives a vector, not a grid: use the cliff head")
    model = MediaPipeLandmarkFeatures(name, pretrained=pretrained, train_from=train_from)
    if input_size != model.input_size:
        raise ValueError(f"backbone {name!r} with model.pooling=landmarks runs at its native input size "
                         f"{list(model.input_size)}; set model.input_size and data.crop_size to it, got "
                         f"{list(input_size)}")
    if checkpoint is not None:
        load_backbone_checkpoint(model, checkpoint)
    _check_freezable(name, freeze, pretrained or checkpoint is not None)
    logger.info("backbone %s: %d landmark features, %.1fM parameters%s", name, model.num_features,
                sum(p.numel() for p in model.parameters()) / 1e6,
                "" if model.top is None else f" ({sum(p.numel() for p in model.top.parameters()) / 1e6:.1f}M "
                f"trainable after {train_from})")
    return Backbone(model, name, model.num_features, False, input_size, False, frozen=freeze), model.num_features


class FlattenGrid(nn.Module):
    """Keep the layout: feature map of stage ``stage`` (B, C, h, w) -> 1×1 conv to ``channels`` -> BN -> ReLU
    -> flatten to (B, channels·h·w). Like DeepPose-era regressors, the head then sees *where* each feature is."""

    def __init__(self, stage: int, in_channels: int, channels: int, grid: Tuple[int, int]) -> None:
        super().__init__()
        self.stage = stage
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels),
                                    nn.ReLU(inplace=True))
        self.grid = grid
        self.out_dim = channels * grid[0] * grid[1]

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        if tuple(grid.shape[-2:]) != self.grid:
            raise ValueError(f"flattened features were built for a {self.grid} grid, got {tuple(grid.shape[-2:])}: "
                             "feed crops of model.input_size")
        return self.reduce(grid).flatten(1)

    @classmethod
    def for_model(cls, model: nn.Module, name: str, input_size: Tuple[int, int], stride: int,
                  channels: int) -> "FlattenGrid":
        """Pick the stage of ``model`` whose reduction is ``stride``, prune the stages after it, and measure its
        grid for ``input_size``."""
        stage = stage_with_stride(model, name, stride)
        if hasattr(model, "prune_intermediate_layers"):  # drop the unused deeper stages (DDP needs every
            model.prune_intermediate_layers(indices=[stage], prune_head=True)  # parameter to get a gradient)
        probe = _probe_maps(model, input_size, [stage])[-1]
        return cls(stage, probe.shape[1], channels, (probe.shape[2], probe.shape[3]))


def stage_with_stride(model: nn.Module, name: str, stride: int) -> int:
    """Index (for ``forward_intermediates``) of the deepest stage of ``model`` whose reduction is ``stride``."""
    info = getattr(model, "feature_info", None)
    if not info or not hasattr(model, "forward_intermediates"):
        raise ValueError(f"backbone {name!r} exposes no feature stages; use model.pooling=avg")
    reductions = [int(f["reduction"]) for f in info]
    if stride not in reductions:
        raise ValueError(f"backbone {name!r} has no stage with stride {stride}; strides: {reductions}")
    return len(reductions) - 1 - reductions[::-1].index(stride)


def _probe_maps(model: nn.Module, input_size: Tuple[int, int], stages: List[int]) -> List[torch.Tensor]:
    """The feature maps of ``stages`` for one blank crop (eval mode, no gradient), to read their shapes."""
    was_training = model.training
    with torch.no_grad():
        maps = model.eval().forward_intermediates(torch.zeros(1, 3, *input_size), indices=stages,
                                                  intermediates_only=True)
    model.train(was_training)
    return list(maps)


def _create_timm_model(name: str, input_size: Tuple[int, int]) -> Tuple[nn.Module, bool]:
    if name in _TINY_NAMES:
        # A 4-stage ResNet with one basic block per stage and 8..64 channels: ~0.2M parameters, for CPU tests.
        return ResNet(block=BasicBlock, layers=(1, 1, 1, 1), channels=(8, 16, 32, 64), stem_width=8,
                      num_classes=0), False
    if not timm.is_model(name):
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(KNOWN_BACKBONES)} "
                         "(or any name from timm.list_models())")
    if name.startswith("vit_"):
        model = timm.create_model(name, pretrained=False, num_classes=0, img_size=input_size,
                                  class_token=False, global_pool="avg", fc_norm=False)
        return model, True
    return timm.create_model(name, pretrained=False, num_classes=0), False


def _as_size(input_size: Sequence[int]) -> Tuple[int, int]:
    size = tuple(int(s) for s in input_size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"input_size must be (H, W) with positive entries, got {input_size!r}")
    return size  # type: ignore[return-value]
