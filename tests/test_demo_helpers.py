"""Shared helpers for the demo tests (untrained tiny checkpoints, images); holds no tests itself."""
from pathlib import Path

import numpy as np

from conftest import TINY_TRAIN_OVERRIDES
from hmr.config import load_config

REPO = Path(__file__).resolve().parents[1]


def make_checkpoint(path: Path, kind: str = "body", representation: str = "prom", root: str = "/nonexistent"):
    """An untrained tiny checkpoint (random head, mean-pose init) that DemoModel can load; returns its path."""
    from hmr.engine.builders import build_body_model, build_model, build_representation
    from hmr.engine.checkpoint import save_checkpoint

    preset = REPO / "configs" / ("body_cpu.yaml" if kind == "body" else "hand_cpu.yaml")
    crop = "[64, 48]" if kind == "body" else "[64, 64]"
    overrides = [f"data.root={root}", *TINY_TRAIN_OVERRIDES, f"model.input_size={crop}", f"data.crop_size={crop}",
                 f"representation.name={representation}"]
    cfg = load_config(str(preset), overrides)
    body = build_body_model(cfg)
    model = build_model(cfg, body, build_representation(cfg))
    save_checkpoint(path, model=model, optimizer=None, scheduler=None, step=0, config=cfg.to_dict())
    return path


def textured_image(h: int = 96, w: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (uint8) — enough structure for crops to differ."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    import cv2

    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
