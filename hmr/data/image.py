"""Image reading at the boundary: OpenCV reads BGR, everything inside the project is RGB uint8."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

import cv2
import numpy as np

try:  # a pinned dependency; the OpenCV path below serves without it
    import simplejpeg
except ImportError:  # pragma: no cover
    simplejpeg = None


class ImageReadError(OSError):
    """An image file is missing, unreadable or corrupt."""


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; raises :class:`ImageReadError` naming the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}")
    return decode_image(np.fromfile(str(path), dtype=np.uint8).tobytes(), str(path))


_JPEG_MAGIC = b"\xff\xd8"


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, ...) to HxWx3 uint8 RGB; :class:`ImageReadError` naming ``name``.

    JPEGs go through simplejpeg (libjpeg-turbo straight to RGB, exact DCT: the same pixels as OpenCV's decoder,
    ~20 % faster; ``tools/bench_data.py``); other formats, and JPEGs simplejpeg refuses, through OpenCV."""
    if data[:2] == _JPEG_MAGIC and simplejpeg is not None:
        try:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False)
        except ValueError:
            pass  # e.g. CMYK or a corrupt file: OpenCV decides
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None or image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageReadError(f"cannot decode image (corrupt or unsupported format): {name}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


ALPHA_BACKGROUND = 128  # neutral grey under transparent pixels


def read_image_composited(path: Union[str, Path]) -> Tuple[np.ndarray, bool]:
    """Like :func:`read_image`, but an image with an alpha channel is composited on a neutral grey
    (``ALPHA_BACKGROUND``) instead of having its alpha dropped; returns (RGB uint8, whether any pixel was
    transparent, i.e. whether compositing changed anything)."""
    image = read_image(path)
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        return image, False
    raw = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3 or raw.shape[2] != 4 or raw.shape[:2] != image.shape[:2]:
        return image, False
    alpha = raw[..., 3:4]
    if raw.dtype != np.uint8:  # 16-bit PNG/TIFF: alpha to 8 bits like the colour channels read_image returns
        alpha = (alpha.astype(np.uint32) * 255 // np.iinfo(raw.dtype).max).astype(np.uint8)
    if np.all(alpha == 255):
        return image, False
    weight = alpha.astype(np.uint16)
    blended = image.astype(np.uint16)  # in place from here: an 8000 x 8000 image needs ~0.6 GB, not several
    blended *= weight
    blended += ALPHA_BACKGROUND * (255 - weight) + 127
    blended //= 255
    return blended.astype(np.uint8), True
