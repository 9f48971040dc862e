"""Resolve model names (``open-smpl``, ``smpl-neutral``, ``mano-right``, ...) to files under ``body_models/``."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from hmr.body.model import BodyModel
from hmr.body.model_data import ModelData, read_official_pickle, read_open_npz

logger = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]

ENV_MODEL_DIR = "HMR_BODY_MODELS"
OPEN_FILES: Dict[str, str] = {
    "open-smpl": "open/open_smpl.npz",
    "open-smpl-full": "open/open_smpl_full.npz",
    "open-mano-right": "open/open_mano_right.npz",
    "open-mano-left": "open/open_mano_left.npz",
}
OFFICIAL_FILES: Dict[str, str] = {
    "smpl-neutral": "smpl/SMPL_NEUTRAL.pkl",
    "smpl-male": "smpl/SMPL_MALE.pkl",
    "smpl-female": "smpl/SMPL_FEMALE.pkl",
    "mano-right": "mano/MANO_RIGHT.pkl",
    "mano-left": "mano/MANO_LEFT.pkl",
}
H36M_REGRESSOR_FILE = "smpl/J_regressor_h36m.npy"
_HOW_TO_GET = {
    "smpl": "register at https://smpl.is.tue.mpg.de, download 'SMPL for Python' (v1.1.0: male/female/neutral) and "
            "save the files as {path} (renaming basicmodel_*_lbs_10_207_0_v1.1.0.pkl)",
    "mano": "register at https://mano.is.tue.mpg.de, download 'Models & Code' and copy mano_v1_2/models/"
            "MANO_RIGHT.pkl / MANO_LEFT.pkl to {path}",
}


def default_model_dir() -> Path:
    """``$HMR_BODY_MODELS`` if set, else ``body_models/`` at the repository root."""
    env = os.environ.get(ENV_MODEL_DIR)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "body_models"


def names() -> list:
    """All model names :func:`load` understands (files may still be missing)."""
    return list(OPEN_FILES) + list(OFFICIAL_FILES)


def resolve(name_or_path: PathLike, model_dir: Optional[PathLike] = None) -> Path:
    """The file a name refers to (a path is returned as is). Raises FileNotFoundError with how to get it."""
    key = str(name_or_path)
    root = Path(model_dir) if model_dir is not None else default_model_dir()
    if key in OPEN_FILES:
        path = root / OPEN_FILES[key]
        if not path.exists():
            raise FileNotFoundError(f"open body model {key!r} not found at {path}; it ships with the repository "
                                    "and can be rebuilt with `python tools/build_body_models.py`")
        return path
    if key in OFFICIAL_FILES:
        path = root / OFFICIAL_FILES[key]
        if not path.exists():
            how = _HOW_TO_GET[key.split("-")[0]].format(path=path)
            raise FileNotFoundError(
                f"official model {key!r} not found at {path}. SMPL/MANO files are licence-gated and never downloaded "
                f"by this project: {how}. Without them, use the open models ('open-smpl', 'open-mano-right').")
        return path
    path = Path(key)
    if path.suffix in (".npz", ".pkl"):
        if not path.exists():
            raise FileNotFoundError(f"body model file not found: {path}")
        return path
    raise ValueError(f"unknown body model {key!r}: expected one of {names()} or a path to a .npz/.pkl file")


def load_data(name_or_path: PathLike, model_dir: Optional[PathLike] = None, num_betas: int = 10) -> ModelData:
    """Read the arrays of a model by name or path (see :func:`resolve`)."""
    path = resolve(name_or_path, model_dir)
    name = str(name_or_path) if str(name_or_path) in names() else path.stem
    if path.suffix == ".npz":
        return read_open_npz(path, name, num_betas)
    eval_regressor = path.parent / Path(H36M_REGRESSOR_FILE).name
    how = _HOW_TO_GET[name.split("-")[0]].format(path=path) if name in OFFICIAL_FILES else ""
    return read_official_pickle(path, name, num_betas, eval_regressor_path=eval_regressor, how_to_get=how)


def load(name_or_path: PathLike, model_dir: Optional[PathLike] = None, num_betas: int = 10,
         dtype: torch.dtype = torch.float32, device: Optional[Union[str, torch.device]] = None) -> BodyModel:
    """Build a :class:`BodyModel` from a name (``open-smpl``, ``open-mano-right``, ``smpl-neutral``, ...) or a
    ``.npz``/``.pkl`` path. Nothing is ever downloaded."""
    data = load_data(name_or_path, model_dir, num_betas)
    model = BodyModel(data, dtype=dtype)
    logger.debug("loaded %s from %s", model.name, data.source)
    return model.to(device) if device is not None else model
