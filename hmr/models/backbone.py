"""Backbone factory: timm image encoders that return a pooled feature vector or a spatial feature grid.

Weights are never downloaded (``pretrained=False`` always); a local checkpoint can be loaded instead
(see :mod:`hmr.models.checkpoint`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import timm
import torch
from torch import nn
from timm.models.resnet import BasicBlock, ResNet

from hmr.models.checkpoint import load_backbone_checkpoint

logger = logging.getLogger(__name__)

#: Names tested by this project; any other timm model name is passed to timm as well.
KNOWN_BACKBONES: Tuple[str, ...] = (
    "resnet_tiny", "cnn_tiny", "resnet18", "resnet34", "resnet50",
    "vit_small_patch16_224", "vit_base_patch16_224", "hrnet_w48",
)
_TINY_NAMES = ("resnet_tiny", "cnn_tiny")


class Backbone(nn.Module):
    """A timm encoder behind one interface.

    ``forward(img (B, 3, H, W))`` returns pooled features ``(B, C)`` or, when built with ``spatial=True``,
    a feature grid ``(B, C, h, w)`` (for attention heads: ``grid.flatten(2).transpose(1, 2)`` gives the
    ``(B, h*w, C)`` tokens). ``feature_dim`` is ``C``.
    """

    def __init__(self, model: nn.Module, name: str, feature_dim: int, spatial: bool,
                 input_size: Tuple[int, int], is_vit: bool) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.feature_dim = feature_dim
        self.spatial = spatial
        self.input_size = input_size
        self.is_vit = is_vit

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"backbone {self.name!r} expects images (B, 3, H, W), got {tuple(img.shape)}")
        if self.is_vit and tuple(img.shape[-2:]) != self.input_size:
            raise ValueError(f"backbone {self.name!r} was built for input size (H, W) = {self.input_size}, "
                             f"got {tuple(img.shape[-2:])}; set model.input_size to the crop size")
        if not self.spatial:
            return self.model(img)
        features = self.model.forward_features(img)
        if not self.is_vit:
            return features
        tokens = features[:, self.model.num_prefix_tokens:]
        grid_h, grid_w = self.model.patch_embed.grid_size
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], grid_h, grid_w)


def build_backbone(name: str, checkpoint: Optional[Union[str, Path]] = None,
                   input_size: Sequence[int] = (256, 192), spatial: bool = False,
                   checkpoint_prefix: Optional[str] = None) -> Tuple[Backbone, int]:
    """Build a backbone by name and return ``(module, feature_dim)``.

    ``name``: one of :data:`KNOWN_BACKBONES` or any timm model name. ``input_size``: crop (H, W); ViTs are
    built for exactly this size (HMR 2.0 / ViTPose style: no class token, mean-pooled patch tokens).
    ``spatial``: return the ``(B, C, h, w)`` grid instead of the pooled vector. ``checkpoint``: a local file
    read with ``torch.load(weights_only=True)``; ``checkpoint_prefix`` (e.g. ``"backbone."``) selects and
    strips a key prefix, ``None`` detects common ones.
    """
    input_size = _as_size(input_size)
    model, is_vit = _create_timm_model(name, input_size)
    if checkpoint is not None:
        load_backbone_checkpoint(model, checkpoint, prefix=checkpoint_prefix)
    # Pooled features can be wider than the feature map when a model has a pre-logits head (MobileNetV3:
    # 576-channel map, 1024-d pooled vector); timm calls that width head_hidden_size.
    feature_dim = int(model.num_features if spatial else getattr(model, "head_hidden_size", None) or model.num_features)
    logger.info("backbone %s: %d features, %.1fM parameters", name, feature_dim,
                sum(p.numel() for p in model.parameters()) / 1e6)
    return Backbone(model, name, feature_dim, spatial, input_size, is_vit), feature_dim


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
