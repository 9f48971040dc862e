"""Dataset registry: ``build_dataset(name, split, cfg)`` and ``build_mixed_dataset(cfg)``.

Paths come from one data root (``data.root``, default ``data``). Built-in names and their layout under it:

  pw3d          3DPW/sequenceFiles/<split>/*.pkl, 3DPW/imageFiles/          (official 3DPW)
  h36m_p1/_p2   h36m/h36m_valid_protocol{1,2}.npz (val/test), h36m/h36m_train.npz (train); images under h36m/
  freihand      FreiHAND/ in the official layout (training_*, evaluation_*)
  synth_body    synth_body/{train,val,test}.npz + images relative to synth_body/ (SPIN/CLIFF npz)
  synth_hand    synth_hand/ in FreiHAND's layout
  coco, mpii, lspet, mpi_inf_3dhp    <name>/<split>.npz + images relative to <name>/ (SPIN/CLIFF npz)
  spin_npz      any SPIN/CLIFF npz: give data.sets.spin_npz.npz and .images

``data.sets.<name>`` (a mapping) overrides or defines a set: ``type`` (spin_npz | freihand | pw3d), paths
(``npz`` may contain ``{split}``; ``npz`` may be a mapping split → path; ``images``, ``root``), and reader
options (``crop_size``, ``on_bad_image``, FreiHAND ``versions``/``load_vertices``/``hands_mean``/``bbox_expand``,
3DPW ``bbox_expand``/``use_intrinsics``). FreiHAND-layout sets whose poses come from ``*_mano.json`` must say how
to read them: ``hands_mean`` = ``mano-right`` (the official MANO file's mean), a .npy path or a list of 45 numbers
(the poses are relative to it, FreiHAND's convention), or ``flat`` (the poses are absolute; ``synth_hand``'s
default). Relative paths are under ``data.root``.
Other keys read here: ``data.crop_size`` [H, W], ``data.augment`` (see :class:`hmr.data.augment.AugmentConfig`),
``data.train`` (list of names, or mapping name → ratio), ``data.ratios``, ``data.epoch_length``, ``data.seed``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from hmr.data.augment import AugmentConfig
from hmr.data.base import DatasetOptions, ImageDataset
from hmr.data.freihand import FreiHANDDataset
from hmr.data.mixed import MixedDataset
from hmr.data.pw3d import PW3DDataset
from hmr.data.spin_npz import SpinNpzDataset

SPLITS = ("train", "val", "test")
DEFAULT_CROP = {"body": (256, 192), "hand": (224, 224)}
_KIND = {"spin_npz": "body", "pw3d": "body", "freihand": "hand"}

BUILTIN_SETS: Dict[str, Dict[str, Any]] = {
    "pw3d": {"type": "pw3d", "root": "3DPW"},
    "h36m_p1": {"type": "spin_npz", "images": "h36m",
                "npz": {"train": "h36m/h36m_train.npz", "val": "h36m/h36m_valid_protocol1.npz",
                        "test": "h36m/h36m_valid_protocol1.npz"}},
    "h36m_p2": {"type": "spin_npz", "images": "h36m",
                "npz": {"train": "h36m/h36m_train.npz", "val": "h36m/h36m_valid_protocol2.npz",
                        "test": "h36m/h36m_valid_protocol2.npz"}},
    "freihand": {"type": "freihand", "root": "FreiHAND"},
    "synth_body": {"type": "spin_npz", "npz": "synth_body/{split}.npz", "images": "synth_body"},
    "synth_hand": {"type": "freihand", "root": "synth_hand", "hands_mean": "flat"},  # relative to the open mean (0)
    "spin_npz": {"type": "spin_npz"},
}
for _name in ("coco", "mpii", "lspet", "mpi_inf_3dhp"):
    BUILTIN_SETS[_name] = {"type": "spin_npz", "npz": f"{_name}/{{split}}.npz", "images": _name}


class UnknownDatasetError(KeyError):
    """A dataset name that is neither built in nor defined under ``data.sets`` (prints without KeyError's quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _get(cfg: Optional[Mapping[str, Any]], dotted: str, default: Any = None) -> Any:
    """``cfg[a][b]...`` for ``"a.b..."``; ``cfg`` may be the whole config or just its ``data`` section."""
    node: Any = cfg or {}
    if dotted.startswith("data.") and "data" not in node:
        dotted = dotted[len("data."):]
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def dataset_names() -> List[str]:
    """The built-in dataset names."""
    return sorted(BUILTIN_SETS)


def dataset_spec(name: str, cfg: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The merged spec (built-in defaults ← ``data.sets.<name>``) of a dataset name."""
    spec = copy.deepcopy(BUILTIN_SETS.get(name, {}))
    user = _get(cfg, f"data.sets.{name}")
    if user is not None:
        if not isinstance(user, Mapping):
            raise ValueError(f"data.sets.{name} must be a mapping, got {type(user).__name__}")
        spec.update({k: copy.deepcopy(v) for k, v in dict(user).items()})
    if not spec:
        raise UnknownDatasetError(f"unknown dataset {name!r}; built-in: {dataset_names()}; "
                                  f"or define data.sets.{name}")
    if spec.get("type") not in _KIND:
        raise ValueError(f"dataset {name!r}: type must be one of {sorted(_KIND)}, got {spec.get('type')!r}")
    return spec


def _resolve(root: Path, value: Any, split: str) -> Path:
    path = Path(str(value).format(split=split))
    return path if path.is_absolute() else root / path


def build_dataset(name: str, split: str, cfg: Optional[Mapping[str, Any]] = None,
                  augment: Optional[bool] = None) -> ImageDataset:
    """A torch Dataset for ``name`` / ``split`` (train | val | test) following the item contract.

    ``cfg`` is the whole config or its ``data`` section (``None``: defaults, data root ``data``).
    ``augment`` defaults to ``split == "train"``; unreadable images are substituted (train) or flagged with
    ``valid = 0`` (val/test) and counted in ``dataset.skipped``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    spec = dataset_spec(name, cfg)
    root = Path(_get(cfg, "data.root", "data"))
    options = dataset_options(spec, _KIND[spec["type"]], split, cfg, augment)
    if spec["type"] == "spin_npz":
        npz = spec.get("npz")
        if isinstance(npz, Mapping):
            if split not in npz:
                raise ValueError(f"dataset {name!r} has no {split!r} split (splits: {sorted(npz)})")
            npz = npz[split]
        if npz is None or spec.get("images") is None:
            raise ValueError(f"dataset {name!r}: set data.sets.{name}.npz (file, may contain {{split}}) and "
                             f"data.sets.{name}.images (image root)")
        return SpinNpzDataset(name, _resolve(root, npz, split), _resolve(root, spec["images"], split), options)
    if spec["type"] == "freihand":
        hands_mean = _hands_mean(spec.get("hands_mean"), root, split)
        return FreiHANDDataset(name, _resolve(root, spec["root"], split), split, options,
                               versions=spec.get("versions"), load_vertices=spec.get("load_vertices"),
                               hands_mean=hands_mean, bbox_expand=float(spec.get("bbox_expand", 1.5)))
    return PW3DDataset(name, _resolve(root, spec["root"], split), split, options,
                       bbox_expand=float(spec.get("bbox_expand", 1.2)),
                       use_intrinsics=bool(spec.get("use_intrinsics", False)))


def dataset_options(spec: Mapping[str, Any], kind: str, split: str, cfg: Optional[Mapping[str, Any]] = None,
                    augment: Optional[bool] = None) -> DatasetOptions:
    """Reader options of one set: crop size (the set's ``crop_size``, else ``data.crop_size``, else the kind's
    default), augmentation (``augment`` defaults to ``split == "train"``) and the unreadable-image policy."""
    augment = (split == "train") if augment is None else augment
    crop = spec.get("crop_size", _get(cfg, "data.crop_size", DEFAULT_CROP[kind]))
    if len(crop) != 2 or min(int(v) for v in crop) <= 0:
        raise ValueError(f"crop_size must be [H, W] with positive entries, got {crop}")
    return DatasetOptions(crop_hw=(int(crop[0]), int(crop[1])), augment=bool(augment),
                          augment_cfg=AugmentConfig.from_mapping(_get(cfg, "data.augment")),
                          on_bad_image=spec.get("on_bad_image", "substitute" if split == "train" else "flag"))


def train_mixture(cfg: Mapping[str, Any]) -> tuple:
    """(names, ratios) of the training mixture from ``data.train`` (names, or name -> ratio) and ``data.ratios``."""
    train = _get(cfg, "data.train")
    if not train:
        raise ValueError("data.train must name at least one dataset (a list, or a mapping name -> ratio)")
    if isinstance(train, Mapping):
        return list(train), [float(v) for v in train.values()]
    names = [train] if isinstance(train, str) else list(train)
    return names, [float(r) for r in (_get(cfg, "data.ratios") or [1.0] * len(names))]


def _hands_mean(value: Any, root: Path, split: str) -> Optional[np.ndarray]:
    """FreiHAND ``hands_mean`` setting -> (45,) array: ``flat`` (zeros: the poses are absolute), an official MANO
    model name (its ``hands_mean``, e.g. ``mano-right``), a .npy path or a list of 45 numbers; None when unset."""
    if value is None:
        return None
    if isinstance(value, str) and value == "flat":
        return np.zeros(45)
    if isinstance(value, str) and value.startswith("mano-"):
        from hmr.body.registry import load_data

        mean = load_data(value).hand_pose_mean
        return np.zeros(45) if mean is None else mean.reshape(-1)
    if isinstance(value, (str, Path)):
        value = np.load(_resolve(root, value, split), allow_pickle=False)
    return np.asarray(value, dtype=np.float64)


def build_mixed_dataset(cfg: Mapping[str, Any], split: str = "train",
                        augment: Optional[bool] = None) -> MixedDataset:
    """The training mixture from ``data.train`` (names, or name → ratio) and ``data.ratios``."""
    names, ratios = train_mixture(cfg)
    datasets = [build_dataset(n, split, cfg, augment=augment) for n in names]
    return MixedDataset(datasets, ratios, length=_get(cfg, "data.epoch_length"), seed=int(_get(cfg, "data.seed", 0)))


def skipped_images(dataset: Any) -> int:
    """Unreadable images counted by a dataset or mixture (0 for datasets that do not count)."""
    return int(getattr(dataset, "skipped", 0))
