"""Image reading at the boundary: OpenCV reads BGR, everything inside the project is RGB uint8."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import cv2
import numpy as np


class ImageReadError(OSError):
    """An image file is missing, unreadable or corrupt."""


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; raises :class:`ImageReadError` naming the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None or image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageReadError(f"cannot decode image (corrupt or unsupported format): {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
