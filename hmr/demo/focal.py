"""Focal length for a demo image: the ``--focal`` flag, else EXIF, else CLIFF's √(w² + h²).

EXIF (read with Pillow): ``FocalLengthIn35mmFilm`` gives f_px = f₃₅ · max(w, h) / 36 (the long side of a 35 mm
frame is 36 mm); otherwise ``FocalLength`` (mm) with ``FocalPlaneXResolution`` / ``FocalPlaneResolutionUnit``
gives f_px = f_mm · pixels-per-mm, rescaled when the stored image is smaller than the sensor readout.

Plausibility: a focal length whose field of view across the image's longer side lies outside
``FOV_RANGE_DEG`` (1°-170°) describes no real camera for that image: a ``--focal`` flag like that refuses the
frame (:class:`FocalError`), an EXIF value like that is ignored (the default is used, with a warning).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional, Tuple, Union

from hmr.geometry.camera import default_focal

log = logging.getLogger(__name__)

EXIF_IFD = 0x8769
TAG_FOCAL_LENGTH = 0x920A
TAG_FOCAL_35MM = 0xA405
TAG_PLANE_X_RES = 0xA20E
TAG_PLANE_UNIT = 0xA210
TAG_PIXEL_X_DIM = 0xA002
UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}   # EXIF resolution units: inch, cm, mm, µm
FOV_RANGE_DEG = (1.0, 170.0)


class FocalError(ValueError):
    """A focal length that no camera could have for this image."""


def check_focal_flag(flag: Optional[float]) -> None:
    """Raise ValueError unless ``flag`` is None or a finite positive number of pixels."""
    if flag is not None and not (math.isfinite(flag) and flag > 0):
        raise ValueError(f"--focal must be a finite positive number of pixels, got {flag}")


def field_of_view(focal: float, height: int, width: int) -> float:
    """Field of view in degrees across the image's longer side."""
    return math.degrees(2.0 * math.atan(max(height, width) / (2.0 * focal)))


def focal_problem(focal: float, height: int, width: int) -> Optional[str]:
    """Why ``focal`` (pixels) is implausible for a ``width`` x ``height`` image, or None when it is plausible."""
    fov = field_of_view(focal, height, width)
    lo, hi = FOV_RANGE_DEG
    if lo <= fov <= hi:
        return None
    return (f"a focal length of {focal:g} px gives a {fov:.1f}° field of view across this {width}x{height} image "
            f"(plausible: {lo:g}-{hi:g}°, i.e. {_focal_for(hi, height, width):.4g}-{_focal_for(lo, height, width):.4g}"
            f" px; the default sqrt(w²+h²) is {default_focal(height, width):.4g} px)")


def _focal_for(fov_deg: float, height: int, width: int) -> float:
    return max(height, width) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))


def _number(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if number > 0 and number == number and number != float("inf") else None


def exif_focal(path: Union[str, Path], height: int, width: int) -> Optional[float]:
    """Focal length in pixels from the file's EXIF data, or None when it has none (or it is unreadable)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with the project's dependencies
        log.debug("Pillow not installed: EXIF focal lengths are not read")
        return None
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            tags = dict(exif.get_ifd(EXIF_IFD))
    except Exception as exc:  # noqa: BLE001 - a file Pillow cannot parse simply has no usable EXIF
        log.debug("no EXIF in %s: %s", path, exc)
        return None
    f35 = _number(tags.get(TAG_FOCAL_35MM))
    if f35 is not None:
        return f35 * max(height, width) / 36.0
    f_mm, x_res = _number(tags.get(TAG_FOCAL_LENGTH)), _number(tags.get(TAG_PLANE_X_RES))
    unit_mm = UNIT_MM.get(int(tags.get(TAG_PLANE_UNIT, 2) or 2))
    if f_mm is None or x_res is None or unit_mm is None:
        return None
    focal = f_mm * x_res / unit_mm
    stored_width = _number(tags.get(TAG_PIXEL_X_DIM))
    if stored_width is not None and abs(stored_width - max(height, width)) > 1:
        focal *= max(height, width) / stored_width
    return focal


def resolve_focal(height: int, width: int, flag: Optional[float] = None,
                  path: Optional[Union[str, Path]] = None) -> Tuple[float, str]:
    """(focal in pixels, its source: ``"flag"``, ``"exif"`` or ``"default"``).

    Raises :class:`FocalError` when the flag is implausible for this image size; an implausible EXIF value is
    logged and replaced by the default."""
    if flag is not None:
        check_focal_flag(flag)
        problem = focal_problem(float(flag), height, width)
        if problem is not None:
            raise FocalError(f"--focal {flag:g}: {problem}")
        return float(flag), "flag"
    if path is not None:
        focal = exif_focal(path, height, width)
        if focal is not None:
            problem = focal_problem(float(focal), height, width)
            if problem is None:
                return float(focal), "exif"
            log.warning("%s: ignoring the EXIF focal length: %s", path, problem)
    return float(default_focal(height, width)), "default"
