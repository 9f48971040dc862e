"""Demo inputs: one image, a folder of images, or a video file, read as RGB frames.

Unreadable images (and videos that cannot be opened) are reported through :class:`Frame` records with
``image=None`` and an ``error`` message, so the caller can list them and go on. Images with transparent pixels
are composited on a neutral grey (``hmr.data.image.ALPHA_BACKGROUND``) and say so in ``Frame.warnings``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Union

import cv2
import numpy as np

from hmr.data.image import ALPHA_BACKGROUND, ImageReadError, read_image_composited

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")


class DemoInputError(ValueError):
    """The demo input path does not exist or holds nothing the demo can read."""


@dataclass
class Source:
    """One input: ``kind`` is ``"image"`` or ``"video"``."""

    path: Path
    kind: str


@dataclass
class Frame:
    """One RGB frame (``image`` None when unreadable, with ``error`` saying why). ``name`` is unique within a
    run and used for output file names; ``index`` is the frame number (0 for images); ``warnings`` say what was
    changed while reading (e.g. transparency composited)."""

    source: Source
    name: str
    index: int
    image: Optional[np.ndarray]
    error: Optional[str] = None
    fps: Optional[float] = None
    warnings: List[str] = field(default_factory=list)
    timestamp: Optional[float] = None   # seconds, from the container where it has them (videos)


def frame_time(frame: Frame) -> float:
    """A frame's time in seconds: the container's timestamp, else its index over the frame rate."""
    if frame.timestamp is not None:
        return float(frame.timestamp)
    return frame.index / float(frame.fps or 25.0)


MAX_CONSECUTIVE_BAD_FRAMES = 25   # undecodable frames in a row before a video is taken to have ended


def discover(path: Union[str, Path]) -> List[Source]:
    """The sources under ``path``: the file itself, or a folder's images and videos (sorted, not recursive)."""
    path = Path(path)
    if not path.exists():
        raise DemoInputError(f"input not found: {path} (expected an image, a video or a folder of images)")
    if path.is_file():
        return [Source(path, "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image")]
    sources = [Source(p, "image" if p.suffix.lower() in IMAGE_SUFFIXES else "video")
               for p in sorted(path.iterdir())
               if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES]
    if not sources:
        raise DemoInputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) or videos ({', '.join(VIDEO_SUFFIXES)}) "
                             f"in folder {path}")
    return sources


def read_frames(source: Source, stem: Optional[str] = None, stride: int = 1,
                max_frames: Optional[int] = None) -> Iterator[Frame]:
    """Frames of one source named after ``stem`` (default: the file stem); every ``stride``-th video frame,
    at most ``max_frames`` of them."""
    stem = stem or source.path.stem
    if source.kind == "image":
        try:
            image, transparent = read_image_composited(source.path)
        except ImageReadError as exc:
            yield Frame(source, stem, 0, None, str(exc))
            return
        notes = [f"the image has transparent pixels (alpha channel): composited on grey ({ALPHA_BACKGROUND}, "
                 f"{ALPHA_BACKGROUND}, {ALPHA_BACKGROUND})"] if transparent else []
        yield Frame(source, stem, 0, image, warnings=notes)
        return
    if stride < 1:
        raise ValueError(f"frame stride must be ≥ 1, got {stride}")
    capture = cv2.VideoCapture(str(source.path))
    try:
        if not capture.isOpened():
            yield Frame(source, stem, 0, None, f"cannot open video: {source.path}")
            return
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        index = emitted = failures = 0
        while max_frames is None or emitted < max_frames:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                # before the container's frame count a failed read is a frame that does not decode: report it
                # and go on (a few in a row); after it, the video has ended
                if index >= count or failures >= MAX_CONSECUTIVE_BAD_FRAMES:
                    break
                failures += 1
                if index % stride == 0:
                    yield Frame(source, f"{stem}_{index:06d}", index, None, f"frame {index} does not decode",
                                fps=fps / stride)
                    emitted += 1
                index += 1
                continue
            failures = 0
            if index % stride == 0:
                msec = capture.get(cv2.CAP_PROP_POS_MSEC)
                yield Frame(source, f"{stem}_{index:06d}", index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                            fps=fps / stride, timestamp=msec / 1000.0 if msec > 0 or index == 0 else None)
                emitted += 1
            index += 1
        if index == 0:
            yield Frame(source, stem, 0, None, f"video has no readable frames: {source.path}")
    finally:
        capture.release()


def unique_names(sources: List[Source]) -> List[str]:
    """Output stems for the sources: the file stem, with the suffix added where two stems collide."""
    stems = [s.path.stem for s in sources]
    return [s.path.stem if stems.count(s.path.stem) == 1 else s.path.name.replace(".", "_") for s in sources]
