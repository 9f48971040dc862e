"""What the demo refuses before predicting, and why: images too small to hold a person, boxes that lie wholly
outside their image, and predictions that are not finite (implausible focal lengths: :mod:`hmr.demo.focal`).

Each check returns a sentence for the run's summary (None when all is well); the runner decides whether the frame
is skipped or the box dropped.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from hmr.demo.boxes import Detection, overlaps_image

MIN_IMAGE_SIDE = 16  # pixels; the synthetic generator's smallest image side too


def image_problem(height: int, width: int) -> Optional[str]:
    """Why a ``width`` x ``height`` image is too small for the demo, or None."""
    if min(height, width) >= MIN_IMAGE_SIDE:
        return None
    return f"image is {width}x{height} pixels; the demo needs at least {MIN_IMAGE_SIDE} on each side"


def split_outside(detections: Sequence[Detection], height: int,
                  width: int) -> Tuple[List[Detection], List[str]]:
    """(detections that cover part of the image, one sentence per box that lies wholly outside it)."""
    inside, dropped = [], []
    for det in detections:
        if overlaps_image(det.bbox, height, width):
            inside.append(det)
        else:
            box = ",".join(f"{v:g}" for v in det.bbox)
            dropped.append(f"box {box} ({det.source}) lies wholly outside the {width}x{height} image: ignored")
    return inside, dropped


def prediction_problem(vertices: np.ndarray, transl: np.ndarray, betas: np.ndarray) -> Optional[str]:
    """Why a prediction cannot be written (non-finite numbers), or None."""
    bad = [name for name, arr in (("vertices", vertices), ("translation", transl), ("betas", betas))
           if not np.all(np.isfinite(arr))]
    return f"the prediction has non-finite {', '.join(bad)}: nothing written for it" if bad else None
