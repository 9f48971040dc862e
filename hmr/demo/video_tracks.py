"""A video's people as tracks: identities per frame (:mod:`hmr.video.tracking`), and after the last frame each
track's parameters smoothed (:mod:`hmr.video.smoothing`) and exported as an animated ``.glb``, a ``.bvh`` and an
``.npz`` in smplx's names (``<out>/<video>/tracks/track_NN.*``)."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from hmr.demo.boxes import Detection
from hmr.demo.predictor import PersonPrediction
from hmr.rotations import special_procrustes
from hmr.video.blender_check import check_blender, glb_to_fbx
from hmr.video.export_gltf import write_track_glb
from hmr.video.export_motion import write_track_bvh, write_track_npz
from hmr.video.smoothing import SmoothingConfig, TrackSeries, smooth_track
from hmr.video.tracking import Tracker, TrackerConfig

log = logging.getLogger(__name__)
EXPORTS = ("glb", "bvh", "npz", "fbx")   # fbx: Blender's exporter, needs scripts/setup_blender.sh


@dataclass
class VideoTrackOptions:
    """Smoothing, which files to write per track, and the shortest track worth exporting (frames)."""

    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    exports: Tuple[str, ...] = ("glb", "bvh", "npz")
    min_frames: int = 2
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.exports) - set(EXPORTS))
        if unknown:
            raise ValueError(f"unknown export format(s) {unknown}; known: {list(EXPORTS)}")
        if "fbx" in self.exports:
            check_blender()   # BlenderUnavailable (a RuntimeError) names the set-up script


@dataclass
class _Row:
    frame: int
    timestamp: float
    person: PersonPrediction


class VideoTracks:
    """Tracks of one video; ``load_body_model(name)`` gives the body model a track's name refers to."""

    def __init__(self, options: VideoTrackOptions, load_body_model: Callable[[str], object]) -> None:
        self.options, self.load_body_model = options, load_body_model
        self.tracker = Tracker(options.tracker)
        self.rows: Dict[int, List[_Row]] = {}

    def assign(self, frame: int, detections: Sequence[Detection]) -> List[int]:
        """Track ids of this frame's detections (same order)."""
        return self.tracker.update(detections, frame)

    def record(self, frame: int, timestamp: float, track_ids: Sequence[int],
               people: Sequence[PersonPrediction]) -> None:
        """Keep this frame's final (fitted) people for their tracks' exports."""
        for track_id, person in zip(track_ids, people):
            self.rows.setdefault(track_id, []).append(_Row(frame, float(timestamp), person))

    def series(self, track_id: int) -> Tuple[str, TrackSeries]:
        """(body-model name, the track's per-frame parameters; rotations projected onto SO(3))."""
        rows = self.rows[track_id]
        name = Counter(r.person.body_model for r in rows).most_common(1)[0][0]
        rows = [r for r in rows if r.person.body_model == name]
        rot = special_procrustes(torch.as_tensor(np.stack([r.person.rotmats for r in rows]), dtype=torch.float64))
        return name, TrackSeries(rotmats=rot.numpy(), betas=np.stack([r.person.betas for r in rows]).astype(float),
                                 transl=np.stack([r.person.transl for r in rows]).astype(float),
                                 timestamps=np.array([r.timestamp for r in rows]),
                                 frames=np.array([r.frame for r in rows]))

    def finish(self, folder: Path, written: Callable[[Path], None]) -> List[Dict[str, object]]:
        """Smooth and export every track; returns one summary record per track."""
        if not self.rows:
            log.warning("%s: nobody was tracked in this video: no animation files written", folder.name)
            return []
        records = []
        for track_id in sorted(self.rows):
            name, raw = self.series(track_id)
            record: Dict[str, object] = {"track_id": track_id, "body_model": name, "frames": len(raw.frames),
                                         "first_frame": int(raw.frames[0]), "last_frame": int(raw.frames[-1])}
            if len(raw.frames) < self.options.min_frames:
                record["note"] = f"shorter than {self.options.min_frames} frames: not exported"
                records.append(record)
                continue
            try:
                body_model = self.load_body_model(name)
            except (FileNotFoundError, KeyError, ValueError) as exc:
                record["note"] = f"no body model {name!r} to export with: {exc}"
                records.append(record)
                continue
            smooth = smooth_track(raw, self.options.smoothing)
            record["smoothing"] = self.options.smoothing.kind
            record["outputs"] = self._export(folder / "tracks" / f"track_{track_id:02d}", body_model, smooth,
                                             raw, track_id, written)
            records.append(record)
        return records

    def _export(self, stem: Path, body_model, smooth: TrackSeries, raw: TrackSeries, track_id: int,
                written: Callable[[Path], None]) -> List[str]:
        stem.parent.mkdir(parents=True, exist_ok=True)
        betas = smooth.betas[0]
        paths = []
        if "glb" in self.options.exports:
            paths.append(write_track_glb(stem.with_suffix(".glb"), body_model, smooth.rotmats, betas, smooth.transl,
                                         smooth.timestamps, name=f"track_{track_id:02d}"))
        if "fbx" in self.options.exports:
            glb = stem.with_suffix(".glb")
            if "glb" not in self.options.exports:
                glb = write_track_glb(stem.with_name(f".{stem.name}.glb"), body_model, smooth.rotmats, betas,
                                      smooth.transl, smooth.timestamps, name=f"track_{track_id:02d}")
            fps = 1.0 / float(np.median(np.diff(smooth.timestamps))) if len(smooth.timestamps) > 1 else 30.0
            paths.append(glb_to_fbx(glb, stem.with_suffix(".fbx"), fps))
            if "glb" not in self.options.exports:
                glb.unlink()
        if "bvh" in self.options.exports:
            paths.append(write_track_bvh(stem.with_suffix(".bvh"), body_model, smooth.rotmats, betas, smooth.transl,
                                         smooth.timestamps))
        if "npz" in self.options.exports:
            paths.append(write_track_npz(stem.with_suffix(".npz"), body_model, smooth.rotmats, betas, smooth.transl,
                                         smooth.timestamps, smooth.frames, track_id,
                                         raw={"rotmats_per_frame": raw.rotmats, "betas_per_frame": raw.betas,
                                              "transl_per_frame": raw.transl}))
        for path in paths:
            written(path)
        return [str(p) for p in paths]


def load_named_body_model(name: str, cache: Optional[Dict[str, object]] = None):
    """``hmr.body.load(name)``, cached."""
    from hmr import body
    cache = {} if cache is None else cache
    if name not in cache:
        cache[name] = body.load(name)
    return cache[name]
