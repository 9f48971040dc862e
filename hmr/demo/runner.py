"""The demo job behind ``tools/demo.py``: inputs → boxes → batched predictions → files.

Box sources, first match wins: ``bboxes`` (the same boxes on every frame), a detections file, the detector.
A frame with no box is reported (``note`` in the summary) and, unless ``fallback_whole_image`` is off, the whole
frame is used as the box. Unreadable inputs are reported and skipped.

Outputs under ``out``: per image ``<name>/overlay.png`` (full-frame camera | side view) and per person
``<name>/personNN.{obj,ply,npz}``; per video ``<name>/overlay.mp4`` and ``<name>/params.npz`` (one row per
detection, with ``frame_index`` and ``person_index``); ``summary.json`` describing every frame and detection.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from hmr.demo.boxes import BBOX_EXPAND, Detection, center_scale, whole_image_box
from hmr.demo.detection_file import DetectionFile
from hmr.demo.detectors import Detector, build_detector
from hmr.demo.export import VideoWriter, parameter_arrays, save_mesh, save_params, stack_params
from hmr.demo.focal import resolve_focal
from hmr.demo.inputs import Frame, Source, discover, read_frames, unique_names
from hmr.demo.predictor import CropInput, DemoModel, PersonPrediction
from hmr.utils.io import save_npz, write_json
from hmr.vis.overlay import intrinsics, overlay_panel, save_png

log = logging.getLogger(__name__)


class DemoError(ValueError):
    """The demo options do not fit together or do not fit the checkpoint."""


@dataclass
class DemoOptions:
    """What to read, where boxes come from, and what to write (see module docstring)."""

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
    fallback_whole_image: bool = True
    meshes: bool = True
    video_meshes: bool = False
    frame_stride: int = 1
    max_frames: Optional[int] = None
    progress: bool = True


@dataclass
class DemoReport:
    """What a run wrote and met: ``written`` paths, per-frame records, unreadable inputs, frames without boxes."""

    written: List[Path] = field(default_factory=list)
    frames: List[Dict[str, object]] = field(default_factory=list)
    skipped: List[Dict[str, str]] = field(default_factory=list)
    no_detection: List[str] = field(default_factory=list)
    summary_path: Optional[Path] = None


@dataclass
class _Pending:
    frame: Frame
    state: "_SourceState"
    detections: List[Detection]
    crops: List[CropInput]
    record: Dict[str, object]


@dataclass
class _SourceState:
    source: Source
    folder: Path
    video: Optional[VideoWriter] = None
    rows: List[Dict[str, np.ndarray]] = field(default_factory=list)
    exhausted: bool = False
    pending: int = 0


class DemoRunner:
    """Runs :class:`DemoOptions` with a loaded :class:`~hmr.demo.predictor.DemoModel`."""

    def __init__(self, model: DemoModel, options: DemoOptions) -> None:
        self.model, self.opts = model, options
        if options.hand is not None and model.kind != "hand":
            raise DemoError(f"--hand {options.hand} needs a hand checkpoint; {model.checkpoint} was trained for "
                            f"body model {model.name!r}")
        if options.batch_size < 1:
            raise DemoError(f"--batch-size must be ≥ 1, got {options.batch_size}")
        if options.max_people is not None and options.max_people < 1:
            raise DemoError(f"--max-people must be ≥ 1, got {options.max_people}")
        self.expand = options.bbox_expand or BBOX_EXPAND[model.kind]
        self.fixed = [Detection(b, 1.0, "bbox-flag", side=options.hand) for b in options.bboxes]
        self.file = DetectionFile(options.detections, model.kind) if options.detections else None
        self.detector: Optional[Detector] = None
        if not self.fixed and self.file is None:
            self.detector = build_detector(options.detector, model.kind)
        self.report = DemoReport()

    # -- boxes -------------------------------------------------------------------------------------------
    def boxes(self, frame: Frame) -> Tuple[List[Detection], Optional[str]]:
        """(detections to use, a note when none was found) for one frame."""
        h, w = frame.image.shape[:2]
        note = None
        if self.fixed:
            found: Optional[List[Detection]] = list(self.fixed)
        elif self.file is not None:
            found = self.file.lookup(frame)
            if found is None:
                note = f"not in detections file {self.file.path.name}"
        elif self.detector is not None:
            found = self.detector(frame.image)
        else:
            return [Detection(whole_image_box(h, w), 1.0, "whole-image", side=self.opts.hand)], None
        found = sorted(found or [], key=lambda d: -d.score)[: self.opts.max_people]
        if found:
            return found, None
        note = note or "no detection"
        if self.opts.fallback_whole_image:
            return [Detection(whole_image_box(h, w), 0.0, "whole-image (fallback)", side=self.opts.hand)], note
        return [], note

    def crops(self, frame: Frame, detections: List[Detection], focal: float) -> List[CropInput]:
        crops = []
        for det in detections:
            center, scale = center_scale(det.bbox, self.expand)
            side = det.side or self.opts.hand or self.model.side
            mirror = self.model.kind == "hand" and side != self.model.side
            crops.append(CropInput(frame.image, center, scale, focal, mirror))
        return crops

    # -- main loop ---------------------------------------------------------------------------------------
    def _frames(self, sources: List[Source]) -> Iterator[Tuple[_SourceState, Frame]]:
        self.states: List[_SourceState] = []
        for source, stem in zip(sources, unique_names(sources)):
            state = _SourceState(source, Path(self.opts.out) / stem)
            self.states.append(state)
            for frame in read_frames(source, stem, self.opts.frame_stride, self.opts.max_frames):
                yield state, frame
            state.exhausted = True

    def run(self, input_path: Path) -> DemoReport:
        """Process every frame under ``input_path`` and write ``summary.json``; returns the report."""
        sources = discover(input_path)
        pending: List[_Pending] = []
        bar = tqdm(self._frames(sources), desc="demo", unit="frame", disable=not self.opts.progress)
        for state, frame in bar:
            item = self._prepare(state, frame)
            if item is not None:
                pending.append(item)
                state.pending += 1
            if sum(len(p.crops) for p in pending) >= self.opts.batch_size:
                self._flush(pending)
                pending = []
        self._flush(pending)
        for state in self.states:
            self._finish(state)
        return self._write_summary(sources)

    def _prepare(self, state: _SourceState, frame: Frame) -> Optional[_Pending]:
        record: Dict[str, object] = {"name": frame.name, "input": str(frame.source.path)}
        if frame.source.kind == "video":
            record["frame"] = frame.index
        if frame.image is None:
            log.warning("skipped: %s", frame.error)
            self.report.skipped.append({"input": str(frame.source.path), "error": str(frame.error)})
            return None
        h, w = frame.image.shape[:2]
        exif_path = frame.source.path if frame.source.kind == "image" else None
        focal, focal_source = resolve_focal(h, w, self.opts.focal, exif_path)
        detections, note = self.boxes(frame)
        record.update(image_size=[h, w], focal_length=round(focal, 3), focal_source=focal_source)
        if note:
            record["note"] = note + ("; whole image used" if detections else "; frame skipped")
            self.report.no_detection.append(frame.name)
            log.info("%s: %s", frame.name, record["note"])
        if state.video is None and frame.source.kind == "video":
            state.video = VideoWriter(state.folder / "overlay.mp4", frame.fps or 25.0)
        return _Pending(frame, state, detections, self.crops(frame, detections, focal), record)

    def _flush(self, pending: List[_Pending]) -> None:
        crops = [c for p in pending for c in p.crops]
        people = self.model.predict(crops, self.opts.batch_size) if crops else []
        start = 0
        for item in pending:
            self._write_frame(item, people[start:start + len(item.crops)])
            start += len(item.crops)
            item.state.pending -= 1
        for state in self.states:
            if state.exhausted and state.pending == 0:
                self._finish(state)

    # -- writing -----------------------------------------------------------------------------------------
    def _write_frame(self, item: _Pending, people: List[PersonPrediction]) -> None:
        frame, state, opts = item.frame, item.state, self.opts
        h, w = frame.image.shape[:2]
        focal = float(item.crops[0].focal) if item.crops else float(item.record["focal_length"])
        is_video = frame.source.kind == "video"
        entries = []
        for k, (det, crop, person) in enumerate(zip(item.detections, item.crops, people)):
            meta = {"focal_length": np.float32(crop.focal), "bbox_xywh": np.asarray(det.bbox, np.float32),
                    "center": crop.center.astype(np.float32), "scale": np.float32(crop.scale),
                    "img_size": np.array([h, w]), "score": np.float32(det.score),
                    "representation": np.array(self.model.representation_name)}
            entry = dict(det.to_json(), person=k, center=[round(float(v), 2) for v in crop.center],
                         scale=round(float(crop.scale), 4), body_model=person.body_model,
                         mirrored=person.mirrored, transl=[round(float(v), 4) for v in person.transl])
            if self.model.kind == "hand":
                entry["side"] = det.side or opts.hand or self.model.side
            if is_video:
                row = parameter_arrays(person, self.model.kind)
                row.update({key: np.asarray(v)[None] for key, v in meta.items() if key != "representation"})
                row.update(frame_index=np.array([frame.index]), person_index=np.array([k]),
                           mirrored=np.array([person.mirrored]))
                state.rows.append(row)
            else:
                stem = state.folder / f"person{k:02d}"
                save_params(stem.with_suffix(".npz"), person, self.model.kind, meta)
                entry["outputs"] = [str(stem.with_suffix(".npz"))]
            if opts.meshes and (not is_video or opts.video_meshes):
                base = (state.folder / "meshes" / f"{frame.name}_person{k:02d}") if is_video else stem
                for suffix in (".obj", ".ply"):
                    save_mesh(base.with_suffix(suffix), person.vertices, person.faces)
                    self._written(base.with_suffix(suffix))
                if not is_video:
                    entry["outputs"] += [str(stem.with_suffix(".obj")), str(stem.with_suffix(".ply"))]
            if not is_video:
                self._written(stem.with_suffix(".npz"))
            entries.append(entry)
        item.record["people"] = entries
        self.report.frames.append(item.record)
        if not people and not is_video:
            return
        K = intrinsics(focal, h, w)
        panel = overlay_panel(frame.image, [p.vertices for p in people], self.model.faces, K,
                              side_view=opts.side_view) if people else self._blank_panel(frame.image)
        if is_video:
            state.video.write(panel)
        else:
            path = state.folder / "overlay.png"
            save_png(path, panel)
            item.record["overlay"] = str(path)
            self._written(path)

    def _blank_panel(self, image: np.ndarray) -> np.ndarray:
        if not self.opts.side_view:
            return image
        return np.concatenate([image, np.full_like(image, 255)], axis=1)

    def _finish(self, state: _SourceState) -> None:
        if state.video is not None:
            if state.video.close():
                self._written(state.video.path)
            state.video = None
            if state.rows:
                path = state.folder / "params.npz"
                arrays = stack_params(state.rows)
                arrays.update(body_model=np.array(self.model.name), kind=np.array(self.model.kind),
                              representation=np.array(self.model.representation_name))
                save_npz(path, **arrays)
                self._written(path)
            state.rows = []

    def _written(self, path: Path) -> None:
        self.report.written.append(Path(path))

    def _write_summary(self, sources: List[Source]) -> DemoReport:
        m = self.model
        summary = {
            "checkpoint": m.checkpoint, "body_model": m.name, "kind": m.kind,
            "representation": m.representation_name, "inference_mapping": m.switches.inference,
            "refit": m.refit,
            "bbox_expand": self.expand, "inputs": [str(s.path) for s in sources],
            "frames": self.report.frames, "skipped": self.report.skipped,
            "frames_without_detection": self.report.no_detection,
            "units": "pixels (boxes, focal), metres (transl, meshes), OpenCV camera frame",
        }
        path = Path(self.opts.out) / "summary.json"
        write_json(path, summary)
        self.report.summary_path = path
        self._written(path)
        return self.report


def run_demo(model: DemoModel, input_path: Path, options: DemoOptions) -> DemoReport:
    """Run the demo on an image, a folder or a video; see :class:`DemoOptions` and the module docstring."""
    return DemoRunner(model, options).run(Path(input_path))
