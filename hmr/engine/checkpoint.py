"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``, carrying everything a resumed run
needs (model, optimizer, scheduler, step, data position, RNG states, config).

RNG states are stored as tensors/plain lists so the file loads under ``weights_only=True``.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from hmr.utils.file_errors import naming_path
from hmr.utils.io import save_torch

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or incompatible with the requested model."""


def rng_state() -> Dict[str, Any]:
    """Python, numpy and torch RNG states in weights_only-safe form."""
    np_state = np.random.get_state()
    return {
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[-2], tuple(int(v) for v in py[:-2]), py[-1]))
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: PathLike, *, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer],
                    scheduler: Optional[Any], step: int, config: Dict[str, Any],
                    extra: Optional[Dict[str, Any]] = None) -> None:
    """Write a checkpoint atomically (a kill mid-write leaves the previous file intact)."""
    payload = {
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "config": config,
        "extra": extra or {},
    }
    try:
        with naming_path(path):
            save_torch(path, payload)
    except OSError:
        raise
    except RuntimeError as exc:   # torch's writer reports a failed write (e.g. a full disk) as RuntimeError
        raise CheckpointError(f"cannot write checkpoint {path}: {exc} (is there space left on its disk?)") from exc
    log.info("checkpoint written: %s (step %d)", path, step)


def load_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``); clear errors for missing or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to the user
        # torch's own message may advise weights_only=False, i.e. running code from the file: never pass that on
        raise CheckpointError(f"cannot read checkpoint {path}: the file is corrupt or truncated, or not a "
                              f"checkpoint of this project (tools/train.py writes checkpoints/last.pt; "
                              f"{type(exc).__name__})") from None
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise CheckpointError(f"{path} is not a hmr training checkpoint (no 'model'/'config' entries)")
    return payload


def check_compatible(payload: Dict[str, Any], body_model: str, representation: str, path: PathLike) -> None:
    """Refuse a checkpoint trained for another body model or rotation representation."""
    cfg = payload["config"]
    trained_body = cfg.get("body_model", {}).get("name")
    trained_rep = cfg.get("representation", {}).get("name")
    if trained_body != body_model:
        raise CheckpointError(f"{path} was trained for body model {trained_body!r}, not {body_model!r}")
    if trained_rep != representation:
        raise CheckpointError(f"{path} was trained with representation {trained_rep!r}, not {representation!r}")
