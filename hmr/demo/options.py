"""What a demo run is asked to do (:class:`DemoOptions`) and what it reports back (:class:`DemoReport`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from hmr.demo.boxes import HAND_SIDES
from hmr.demo.detection_file import DetectionFileError
from hmr.demo.focal import check_focal_flag


class DemoError(ValueError):
    """The demo options do not fit together or do not fit the checkpoint."""


@dataclass
class DemoOptions:
    """What to read, where boxes come from, and what to write (see :mod:`hmr.demo.runner`).

    ``fallback_whole_image``: use the whole frame when no box is found — None (default) means yes for box-only
    detectors and no for the keypoint detectors (blazepose, hands), whose "nobody here" is trusted. ``fit``:
    keypoint-guided fitting of every person that has keypoints; ``min_keypoint_confidence``: keypoints below it
    neither count in the 2D error nor pull the fit; ``fit_settings``: :class:`~hmr.fitting.FitConfig` fields over
    the demo's settings (:func:`hmr.demo.fitting.demo_fit_config`); ``track``: in videos, the keypoint detectors
    follow last frame's people instead of running the person detector on every frame (MediaPipe's video mode);
    ``align_from_keypoints``: a landmark-feature model rotates each crop by the detection's own keypoints (hip
    centre -> shoulder centre, wrist -> middle MCP) instead of running its alignment pass (one network pass less).
    Videos: people keep a track id across frames; after the last frame each track is smoothed (``smoothing``:
    savgol | one_euro | none; ``smooth_window`` frames) and written in the ``exports`` formats (glb, bvh, npz)."""

    out: Path
    bboxes: Sequence[Tuple[float, float, float, float]] = ()
    detections: Optional[Path] = None
    detector: str = "auto"
    focal: Optional[float] = None
    hand: Optional[str] = None
    batch_size: int = 8
    max_people: Optional[int] = None
    side_view: bool = True
    bbox_expand: Optional[float] = None
    fallback_whole_image: Optional[bool] = None
    meshes: bool = True
    video_meshes: bool = False
    frame_stride: int = 1
    max_frames: Optional[int] = None
    progress: bool = True
    fit: bool = False
    min_keypoint_confidence: float = 0.3
    track: bool = True
    align_from_keypoints: bool = True
    draw_keypoints: bool = True
    fit_settings: Dict[str, float] = field(default_factory=dict)
    smoothing: str = "savgol"
    smooth_window: int = 9
    exports: Tuple[str, ...] = ("glb", "bvh", "npz")

    def validate(self) -> None:
        """Raise :class:`DemoError` (or ``DetectionFileError``) for values no frame could use; cheap, so tools
        call it (through :func:`hmr.demo.runner.check_demo_inputs`) before a checkpoint is loaded."""
        if self.batch_size < 1:
            raise DemoError(f"--batch-size must be ≥ 1, got {self.batch_size}")
        if self.max_people is not None and self.max_people < 1:
            raise DemoError(f"--max-people must be ≥ 1, got {self.max_people}")
        if self.frame_stride < 1:
            raise DemoError(f"--frame-stride must be ≥ 1, got {self.frame_stride}")
        if self.max_frames is not None and self.max_frames < 1:
            raise DemoError(f"--max-frames must be ≥ 1, got {self.max_frames}")
        if self.bbox_expand is not None and not (math.isfinite(self.bbox_expand) and self.bbox_expand > 0):
            raise DemoError(f"--bbox-expand must be a finite positive factor, got {self.bbox_expand}")
        if self.hand is not None and self.hand not in HAND_SIDES:
            raise DemoError(f"--hand must be one of {HAND_SIDES}, got {self.hand!r}")
        if not (math.isfinite(self.min_keypoint_confidence) and 0.0 <= self.min_keypoint_confidence < 1.0):
            raise DemoError(f"--min-keypoint-confidence must be in [0, 1), got {self.min_keypoint_confidence}")
        if self.fit_settings:
            from hmr.fitting import FitConfig
            known = set(FitConfig.__dataclass_fields__) - {"min_confidence"}
            unknown = sorted(set(self.fit_settings) - known)
            if unknown:
                raise DemoError(f"--fit-set: unknown FitConfig field(s) {unknown}; known: {sorted(known)}")
            try:
                FitConfig(**self.fit_settings)
            except (TypeError, ValueError) as exc:
                raise DemoError(f"--fit-set: {exc}") from None
        try:
            self.video_track_options()
        except (ValueError, RuntimeError) as exc:   # RuntimeError: fbx without Blender installed
            raise DemoError(str(exc)) from None
        try:
            check_focal_flag(self.focal)
        except ValueError as exc:
            raise DemoError(str(exc)) from None
        if self.detections is not None and not Path(self.detections).exists():
            raise DetectionFileError(f"detections file not found: {self.detections}")

    def video_track_options(self):
        """The tracking / smoothing / export settings of videos (:class:`hmr.demo.video_tracks.VideoTrackOptions`)."""
        from hmr.demo.video_tracks import VideoTrackOptions
        from hmr.video.smoothing import SmoothingConfig
        return VideoTrackOptions(smoothing=SmoothingConfig(kind=self.smoothing, window=self.smooth_window),
                                 exports=tuple(self.exports))


@dataclass
class DemoReport:
    """What a run wrote and met: ``written`` paths, per-frame records, unreadable inputs, frames without boxes,
    and people whose fit fell back (``fit_fallbacks``: "frame: reason")."""

    written: List[Path] = field(default_factory=list)
    frames: List[Dict[str, object]] = field(default_factory=list)
    skipped: List[Dict[str, object]] = field(default_factory=list)
    no_detection: List[str] = field(default_factory=list)
    fit_fallbacks: List[str] = field(default_factory=list)
    tracks: Dict[str, List[Dict[str, object]]] = field(default_factory=dict)
    summary_path: Optional[Path] = None
    inputs: int = 0
