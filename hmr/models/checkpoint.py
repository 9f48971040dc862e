"""Load a local backbone checkpoint into a timm model, strictly, with errors that list what does not match."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

import torch
from torch import nn
from timm.layers import resample_abs_pos_embed

logger = logging.getLogger(__name__)

#: Prefixes tried (in this order) when none is given; "backbone.model." reads an hmr Regressor checkpoint.
AUTO_PREFIXES = ("", "module.", "backbone.", "backbone.model.", "module.backbone.", "model.backbone.",
                 "model.", "encoder.")
_WRAPPER_KEYS = ("model", "state_dict")
_MAX_LISTED = 10


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes do not match the model."""


def load_backbone_checkpoint(model: nn.Module, path: Union[str, Path], prefix: Optional[str] = None) -> None:
    """Load ``path`` into ``model`` (in place); every model tensor must be present with the right shape.

    Accepts a plain state_dict or ``{'model' | 'state_dict': state_dict, ...}``. ``prefix`` selects and
    strips keys (e.g. ``"backbone."``); ``None`` picks the prefix from :data:`AUTO_PREFIXES` that matches the
    most model keys. Classifier weights of an ImageNet checkpoint are dropped (the backbone has no classifier);
    for ViTs a class token is dropped and the position embedding resampled to the model's patch grid.
    """
    state = _read_state_dict(Path(path))
    if prefix is None:
        prefix = _best_prefix(state, model.state_dict())
    elif not any(key.startswith(prefix) for key in state):
        raise CheckpointMismatchError(f"no key in checkpoint {path} starts with prefix {prefix!r}; "
                                      f"first keys: {_listing(list(state))}")
    state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    state = _drop_classifier(state, model)
    state = _adapt_vit(state, model)
    _check_match(state, model.state_dict(), path)
    model.load_state_dict(state, strict=True)
    logger.info("loaded %d tensors from %s (prefix %r)", len(state), path, prefix)


def _read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"backbone checkpoint not found: {path} (expected a local .pt/.pth file; "
                                "nothing is downloaded)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or non-weights files
        raise ValueError(f"cannot read backbone checkpoint {path} with torch.load(weights_only=True): {err}") from err
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"backbone checkpoint {path} is not a state_dict (name -> tensor), nor a dict with "
                         f"one under {' or '.join(repr(k) for k in _WRAPPER_KEYS)}")
    return dict(obj)


def _best_prefix(state: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]) -> str:
    def matches(prefix: str) -> int:
        return sum(1 for key in state if key.startswith(prefix) and key[len(prefix):] in model_state)

    counts = {prefix: matches(prefix) for prefix in AUTO_PREFIXES}
    return max(AUTO_PREFIXES, key=lambda prefix: counts[prefix])  # ties keep the earlier (shorter) prefix


def _drop_classifier(state: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier") or "fc"
    names = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    model_keys = model.state_dict().keys()
    dropped = [key for key in state if key not in model_keys and any(key.startswith(f"{n}.") for n in names)]
    if dropped:
        logger.info("ignoring classifier weights in checkpoint: %s", _listing(dropped))
    return {key: value for key, value in state.items() if key not in dropped}


def _adapt_vit(state: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Drop a class token the model does not have; resample the position embedding to the model's grid."""
    if "pos_embed" not in state or not hasattr(model, "patch_embed") or not hasattr(model, "pos_embed"):
        return state
    state = dict(state)
    pos = state["pos_embed"]
    num_prefix = 1 if "cls_token" in state else 0
    if num_prefix and getattr(model, "cls_token", None) is None:
        del state["cls_token"]
        pos = pos[:, num_prefix:]
        num_prefix = 0
    grid = list(model.patch_embed.grid_size)
    target = model.pos_embed.shape[1]
    if pos.shape[1] != target:
        old_tokens = pos.shape[1] - num_prefix
        side = int(round(old_tokens ** 0.5))
        if side * side != old_tokens:
            raise CheckpointMismatchError(f"cannot resample a non-square position embedding of {old_tokens} "
                                          f"tokens to the model's grid {grid}")
        pos = resample_abs_pos_embed(pos, new_size=grid, old_size=[side, side], num_prefix_tokens=num_prefix)
        logger.info("resampled ViT position embedding from %dx%d to %dx%d", side, side, *grid)
    state["pos_embed"] = pos
    return state


def _check_match(state: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor],
                 path: Union[str, Path]) -> None:
    missing = [key for key in model_state if key not in state]
    unexpected = [key for key in state if key not in model_state]
    wrong_shape = [f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(model_state[key].shape)}"
                   for key in model_state if key in state and state[key].shape != model_state[key].shape]
    if missing or unexpected or wrong_shape:
        raise CheckpointMismatchError(
            f"backbone checkpoint {path} does not match the model: "
            f"{len(missing)} missing keys {_listing(missing)}; "
            f"{len(unexpected)} unexpected keys {_listing(unexpected)}; "
            f"{len(wrong_shape)} shape mismatches {_listing(wrong_shape)} "
            "(check the backbone name and checkpoint_prefix)")


def _listing(items: List[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f", ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"[{shown}{more}]"
