"""The demo job behind ``tools/demo.py``: inputs → boxes → batched predictions → files.

Box sources, first match wins: ``bboxes`` (the same boxes on every frame), a detections file, the detector.
A frame with no box is reported (``note`` in the summary) and, unless ``fallback_whole_image`` is off, the whole
frame is used as the box. Boxes that lie wholly outside their image are ignored (a ``warnings`` entry); a frame
whose ``--bbox`` boxes all lie outside it is skipped, never replaced by the whole image. Unreadable inputs, images
smaller than ``checks.MIN_IMAGE_SIDE`` and frames for which ``--focal`` is implausible are skipped and listed.

Outputs under ``out``: per image ``<name>/overlay.png`` (full-frame camera | side view) and per person
``<name>/personNN.{obj,ply,npz}``; per video ``<name>/overlay.mp4`` and ``<name>/params.npz`` (one row per
detection, with ``frame_index`` and ``person_index``); ``summary.json`` describing every frame and detection.
Overlays are drawn with the image scaled down to at most ``OVERLAY_MAX_SIDE`` (2048) pixels on its longer side
(``overlay_scale`` in the summary), so a huge input does not need gigabytes for its overlay; parameters and
meshes are always in the full image's camera. A write that fails raises an ``OSError`` naming the file.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from hmr.demo.boxes import BBOX_EXPAND, HAND_SIDES, Detection, center_scale, whole_image_box
from hmr.demo.checks import image_problem, prediction_problem, split_outside
from hmr.demo.detection_file import DetectionFile, DetectionFileError
from hmr.demo.detectors import Detector, build_detector
from hmr.demo.export import VideoWriter, overlay_view, parameter_arrays, save_mesh, save_params, stack_params
from hmr.demo.focal import FocalError, check_focal_flag, resolve_focal
from hmr.demo.inputs import Frame, Source, discover, read_frames, unique_names
from hmr.demo.predictor import CropInput, DemoModel, PersonPrediction
from hmr.utils.file_errors import naming_path
from hmr.utils.io import save_npz, write_json
from hmr.vis.overlay import intrinsics, overlay_panel, save_png

log = logging.getLogger(__name__)
OVERLAY_MAX_SIDE = 2048  # overlays are drawn with the image's longer side at most this many pixels


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

    def validate(self) -> None:
        """Raise :class:`DemoError` (or ``DetectionFileError``) for values no frame could use; cheap, so tools
        call it (through :func:`check_demo_inputs`) before a checkpoint is loaded."""
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
        try:
            check_focal_flag(self.focal)
        except ValueError as exc:
            raise DemoError(str(exc)) from None
        if self.detections is not None and not Path(self.detections).exists():
            raise DetectionFileError(f"detections file not found: {self.detections}")


@dataclass
class DemoReport:
    """What a run wrote and met: ``written`` paths, per-frame records, unreadable inputs, frames without boxes."""

    written: List[Path] = field(default_factory=list)
    frames: List[Dict[str, object]] = field(default_factory=list)
    skipped: List[Dict[str, object]] = field(default_factory=list)
    no_detection: List[str] = field(default_factory=list)
    summary_path: Optional[Path] = None
    inputs: int = 0


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
        options.validate()
        self._logged: set = set()
        self.expand = options.bbox_expand or BBOX_EXPAND[model.kind]
        self.fixed = [Detection(b, 1.0, "bbox-flag", side=options.hand) for b in options.bboxes]
        self.file = DetectionFile(options.detections, model.kind) if options.detections else None
        self.detector: Optional[Detector] = None
        if not self.fixed and self.file is None:
            self.detector = build_detector(options.detector, model.kind)
        self.report = DemoReport()

    # -- boxes -------------------------------------------------------------------------------------------
    def boxes(self, frame: Frame) -> Tuple[List[Detection], Optional[str], List[str]]:
        """(detections to use, a note when none was found, one warning per box ignored) for one frame."""
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
            return [Detection(whole_image_box(h, w), 1.0, "whole-image", side=self.opts.hand)], None, []
        inside, warnings = split_outside(found or [], h, w)
        found = sorted(inside, key=lambda d: -d.score)[: self.opts.max_people]
        if found or self.fixed:  # the user's own boxes are never replaced by the whole image
            return found, None, warnings
        note = note or ("no detection inside the image" if warnings else "no detection")
        if self.opts.fallback_whole_image:
            whole = Detection(whole_image_box(h, w), 0.0, "whole-image (fallback)", side=self.opts.hand)
            return [whole], note, warnings
        return [], note, warnings

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
        self.report.inputs = len(sources)
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

    def _log_once(self, level: int, source: Path, message: str) -> None:
        """Log ``message`` once per input (a video's frames repeat the same problem)."""
        if (str(source), message) not in self._logged:
            self._logged.add((str(source), message))
            log.log(level, "%s: %s", source, message)

    def _skip(self, frame: Frame, reason: str) -> None:
        entry: Dict[str, object] = {"input": str(frame.source.path), "error": reason}
        if frame.source.kind == "video":
            entry["frame"] = frame.index
        self.report.skipped.append(entry)
        self._log_once(logging.WARNING, frame.source.path, f"skipped: {reason}")

    def _prepare(self, state: _SourceState, frame: Frame) -> Optional[_Pending]:
        record: Dict[str, object] = {"name": frame.name, "input": str(frame.source.path)}
        if frame.source.kind == "video":
            record["frame"] = frame.index
        if frame.image is None:
            self._skip(frame, str(frame.error))
            return None
        h, w = frame.image.shape[:2]
        problem = image_problem(h, w)
        if problem is not None:
            self._skip(frame, problem)
            return None
        exif_path = frame.source.path if frame.source.kind == "image" else None
        try:
            focal, focal_source = resolve_focal(h, w, self.opts.focal, exif_path)
        except FocalError as exc:
            self._skip(frame, str(exc))
            return None
        detections, note, box_warnings = self.boxes(frame)
        if self.fixed and not detections:
            self._skip(frame, "; ".join(box_warnings))
            return None
        record.update(image_size=[h, w], focal_length=round(focal, 3), focal_source=focal_source)
        warnings = list(frame.warnings) + box_warnings
        if warnings:
            record["warnings"] = warnings
            for warning in warnings:
                self._log_once(logging.WARNING, frame.source.path, warning)
        if note:
            record["note"] = note + ("; whole image used" if detections else "; frame skipped")
            self.report.no_detection.append(frame.name)
            log.info("%s: %s", frame.name, record["note"])
        if state.video is None and frame.source.kind == "video":
            with naming_path(state.folder / "overlay.mp4"):
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
        kept = []
        for det, crop, person in zip(item.detections, item.crops, people):
            problem = prediction_problem(person.vertices, person.transl, person.betas)
            if problem is None:
                kept.append((det, crop, person))
            else:
                item.record.setdefault("warnings", []).append(f"box {det.to_json()['bbox_xywh']}: {problem}")
                self._log_once(logging.WARNING, frame.source.path, problem)
        people = [person for _, _, person in kept]
        for k, (det, crop, person) in enumerate(kept):
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
                with naming_path(stem.with_suffix(".npz")):
                    save_params(stem.with_suffix(".npz"), person, self.model.kind, meta)
                entry["outputs"] = [str(stem.with_suffix(".npz"))]
            if opts.meshes and (not is_video or opts.video_meshes):
                base = (state.folder / "meshes" / f"{frame.name}_person{k:02d}") if is_video else stem
                for suffix in (".obj", ".ply"):
                    with naming_path(base.with_suffix(suffix)):
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
        view, K, scale = overlay_view(frame.image, intrinsics(focal, h, w), OVERLAY_MAX_SIDE)
        if scale < 1.0:
            item.record["overlay_scale"] = round(scale, 6)
        panel = overlay_panel(view, [p.vertices for p in people], self.model.faces, K,
                              side_view=opts.side_view) if people else self._blank_panel(view)
        if is_video:
            with naming_path(state.video.path):
                state.video.write(panel)
        else:
            path = state.folder / "overlay.png"
            with naming_path(path):
                save_png(path, panel)
            item.record["overlay"] = str(path)
            self._written(path)

    def _blank_panel(self, image: np.ndarray) -> np.ndarray:
        if not self.opts.side_view:
            return image
        return np.concatenate([image, np.full_like(image, 255)], axis=1)

    def _finish(self, state: _SourceState) -> None:
        if state.video is not None:
            with naming_path(state.video.path):
                closed = state.video.close()
            if closed:
                self._written(state.video.path)
            state.video = None
            if state.rows:
                path = state.folder / "params.npz"
                arrays = stack_params(state.rows)
                arrays.update(body_model=np.array(self.model.name), kind=np.array(self.model.kind),
                              representation=np.array(self.model.representation_name))
                with naming_path(path):
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
        with naming_path(path):
            write_json(path, summary)
        self.report.summary_path = path
        self._written(path)
        return self.report


def check_demo_inputs(input_path: Path, options: DemoOptions) -> List[Source]:
    """The sources under ``input_path`` after checking ``options`` — what can fail before a checkpoint loads
    (raises :class:`DemoError`, ``DemoInputError`` or ``DetectionFileError``)."""
    options.validate()
    return discover(input_path)


def run_demo(model: DemoModel, input_path: Path, options: DemoOptions) -> DemoReport:
    """Run the demo on an image, a folder or a video; see :class:`DemoOptions` and the module docstring."""
    return DemoRunner(model, options).run(Path(input_path))
