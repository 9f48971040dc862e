"""The demo job behind ``tools/demo.py``: inputs → boxes (+ keypoints) → batched predictions → keypoint
fitting → files.

Box sources, first match wins: ``bboxes`` (the same boxes on every frame), a detections file, the detector
(:mod:`hmr.demo.detectors`; ``blazepose`` / ``hands`` also give keypoints; with ``fit``, body boxes that came
without keypoints get BlazePose's landmarks in the box). A frame with no box is reported
(``note`` in the summary); box-only detectors then use the whole frame as the box (``fallback_whole_image``), the
keypoint detectors write nothing for it (no person / no hand is an answer, not a failure). Boxes that lie wholly
outside their image are ignored (a ``warnings`` entry); a frame whose ``--bbox`` boxes all lie outside it is
skipped, never replaced by the whole image. Unreadable inputs, images smaller than ``checks.MIN_IMAGE_SIDE`` and
frames for which ``--focal`` is implausible are skipped and listed.

People with keypoints get the 2D keypoint error of their mesh and, with ``fit``, are fitted to the keypoints
(:mod:`hmr.demo.fitting`: all people of a frame in one batch; in videos each tracked person starts from the
previous frame's fit). Per frame, ``seconds`` records the time of detection, regression (this frame's share of
its batch) and fitting.

Outputs under ``out``: per image ``<name>/overlay.png`` (full-frame camera with the detected keypoints | side
view) and per person ``<name>/personNN.{obj,ply,npz}``; per video ``<name>/overlay.mp4`` and
``<name>/params.npz`` (one row per detection, with ``frame_index`` and ``person_index``); ``summary.json``
describing every frame and detection. Overlays are drawn with the image scaled down to at most
``OVERLAY_MAX_SIDE`` (2048) pixels on its longer side (``overlay_scale`` in the summary); parameters and meshes
are always in the full image's camera. A write that fails raises an ``OSError`` naming the file.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from hmr.demo.boxes import BBOX_EXPAND, Detection, alignment_vector, center_scale, whole_image_box
from hmr.demo.checks import image_problem, prediction_problem, split_outside
from hmr.demo.detection_file import DetectionFile
from hmr.demo.detectors import Detector, build_detector, gives_keypoints
from hmr.demo.fitting import DemoFitter
from hmr.demo.focal import FocalError, resolve_focal
from hmr.demo.inputs import Frame, Source, discover, frame_time, read_frames, unique_names
from hmr.demo.options import DemoError, DemoOptions, DemoReport
from hmr.demo.predictor import CropInput, DemoModel, PersonPrediction
from hmr.demo.export import VideoWriter
from hmr.demo.video_tracks import VideoTracks, load_named_body_model
from hmr.demo.writer import (SourceState, finish_source, overlay_image, person_arrays, person_entry, write_overlay,
                             write_person)
from hmr.utils.file_errors import naming_path
from hmr.utils.io import write_json

log = logging.getLogger(__name__)
OVERLAY_MAX_SIDE = 2048  # overlays are drawn with the image's longer side at most this many pixels
__all__ = ["DemoError", "DemoOptions", "DemoReport", "DemoRunner", "check_demo_inputs", "run_demo"]


@dataclass
class _Pending:
    frame: Frame
    state: SourceState
    detections: List[Detection]
    crops: List[CropInput]
    record: Dict[str, object]


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
        self.keypoint_detector = gives_keypoints(self.detector)
        self.whole_image = (options.fallback_whole_image if options.fallback_whole_image is not None
                            else not self.keypoint_detector)
        self.fitter = DemoFitter(model, options.fit, options.min_keypoint_confidence, options.fit_settings)
        self.box_keypoints = None
        if options.fit and self.detector is None and model.kind == "body":
            from hmr.demo.keypoint_detectors import BoxKeypoints, missing_networks
            problem = missing_networks("body")
            if problem is None:
                self.box_keypoints = BoxKeypoints()
            else:
                log.warning("--fit: boxes without keypoints cannot be fitted: %s", problem)
        self.report = DemoReport()
        self._body_models: Dict[str, object] = {}   # body models of video tracks' exports, by name

    # -- boxes -------------------------------------------------------------------------------------------
    def _nobody(self) -> str:
        if not self.keypoint_detector:
            return "no detection"
        if self.model.kind == "hand":
            return ("no hand found (MediaPipe Hands): this is a hand checkpoint and needs a photo with a visible "
                    "hand (or give the hand's box with --bbox)")
        return "no person found (BlazePose)"

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
        if self.box_keypoints is not None and found:
            found = self.box_keypoints(frame.image, found)
        if found or self.fixed:  # the user's own boxes are never replaced by the whole image
            return found, None, warnings
        note = note or ("no detection inside the image" if warnings else self._nobody())
        if self.whole_image:
            whole = Detection(whole_image_box(h, w), 0.0, "whole-image (fallback)", side=self.opts.hand)
            return [whole], note, warnings
        return [], note, warnings

    def crops(self, frame: Frame, detections: List[Detection], focal: float) -> List[CropInput]:
        crops = []
        for det in detections:
            center, scale = center_scale(det.bbox, self.expand)
            side = det.side or self.opts.hand or self.model.side
            mirror = self.model.kind == "hand" and side != self.model.side
            vector = alignment_vector(det) if self.opts.align_from_keypoints else None
            crops.append(CropInput(frame.image, center, scale, focal, mirror, vector))
        return crops

    # -- main loop ---------------------------------------------------------------------------------------
    def _frames(self, sources: List[Source]) -> Iterator[Tuple[SourceState, Frame]]:
        self.states: List[SourceState] = []
        for source, stem in zip(sources, unique_names(sources)):
            state = SourceState(source, Path(self.opts.out) / stem)
            self.states.append(state)
            if hasattr(self.detector, "reset"):
                self.detector.reset(tracking=self.opts.track and source.kind == "video")
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

    def _prepare(self, state: SourceState, frame: Frame) -> Optional[_Pending]:
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
        started = time.perf_counter()
        detections, note, box_warnings = self.boxes(frame)
        if self.fixed and not detections:
            self._skip(frame, "; ".join(box_warnings))
            return None
        record.update(image_size=[h, w], focal_length=round(focal, 3), focal_source=focal_source,
                      seconds={"detection": round(time.perf_counter() - started, 4)})
        warnings = list(frame.warnings) + box_warnings
        if warnings:
            record["warnings"] = warnings
            for warning in warnings:
                self._log_once(logging.WARNING, frame.source.path, warning)
        if note:
            record["note"] = note + ("; whole image used" if detections else "; frame skipped, nothing written")
            self.report.no_detection.append(frame.name)
            log.info("%s: %s", frame.name, record["note"])
        if state.video is None and frame.source.kind == "video":
            with naming_path(state.folder / "overlay.mp4"):
                state.video = VideoWriter(state.folder / "overlay.mp4", frame.fps or 25.0)
            state.video_tracks = VideoTracks(self.opts.video_track_options(),
                                             lambda name: load_named_body_model(name, self._body_models))
        return _Pending(frame, state, detections, self.crops(frame, detections, focal), record)

    def _flush(self, pending: List[_Pending]) -> None:
        crops = [c for p in pending for c in p.crops]
        started = time.perf_counter()
        people = self.model.predict(crops, self.opts.batch_size) if crops else []
        per_crop = (time.perf_counter() - started) / max(len(crops), 1)
        start = 0
        for item in pending:
            item.record["seconds"]["regression"] = round(per_crop * len(item.crops), 4)
            self._write_frame(item, people[start:start + len(item.crops)])
            start += len(item.crops)
            item.state.pending -= 1
        for state in self.states:
            if state.exhausted and state.pending == 0:
                self._finish(state)

    # -- fitting and writing -----------------------------------------------------------------------------
    def _write_frame(self, item: _Pending, people: List[PersonPrediction]) -> None:
        frame, state, opts = item.frame, item.state, self.opts
        h, w = frame.image.shape[:2]
        focal = float(item.crops[0].focal) if item.crops else float(item.record["focal_length"])
        is_video = frame.source.kind == "video"
        kept = []
        for det, crop, person in zip(item.detections, item.crops, people):
            problem = prediction_problem(person.vertices, person.transl, person.betas)
            if problem is None:
                kept.append((det, crop, person))
            else:
                item.record.setdefault("warnings", []).append(f"box {det.to_json()['bbox_xywh']}: {problem}")
                self._log_once(logging.WARNING, frame.source.path, problem)
        dets = [d for d, _, _ in kept]
        track_ids = state.video_tracks.assign(frame.index, dets) if state.video_tracks else None
        started = time.perf_counter()
        fits, fitted = self.fitter.process(dets, [p for _, _, p in kept], state.tracks if is_video else None,
                                           track_ids, image_size=(h, w))
        state.tracks = fitted if is_video else None
        if opts.fit:
            item.record["seconds"]["fit"] = round(time.perf_counter() - started, 4)
        if state.video_tracks is not None:
            state.video_tracks.record(frame.index, frame_time(frame), track_ids, [f.person for f in fits])
        entries = []
        for k, ((det, crop, _), fit) in enumerate(zip(kept, fits)):
            side = (det.side or opts.hand or self.model.side) if self.model.kind == "hand" else None
            entry = person_entry(k, det, crop, fit.person, self.model.kind, side, fit.record)
            if track_ids is not None:
                entry["track_id"] = track_ids[k]
            if opts.fit and fit.status != "ok":
                self.report.fit_fallbacks.append(f"{frame.name} person {k}: {fit.record['fit']['message']}")
            meta = person_arrays(det, crop, (h, w), self.model.representation_name,
                                 fit.status if opts.fit else None)
            outputs = write_person(state, frame, k, fit.person, self.model.kind, meta, opts.meshes,
                                   opts.video_meshes, self._written)
            if outputs:
                entry["outputs"] = outputs
            entries.append(entry)
        item.record["people"] = entries
        self.report.frames.append(item.record)
        if not kept and not is_video:
            return
        panel, scale = overlay_image(frame.image, focal, [f.person for f in fits], self.model.faces,
                                     [d for d, _, _ in kept], OVERLAY_MAX_SIDE, opts.side_view,
                                     opts.min_keypoint_confidence if opts.draw_keypoints else None, track_ids)
        if scale < 1.0:
            item.record["overlay_scale"] = round(scale, 6)
        path = write_overlay(state, frame, panel, self._written)
        if path is not None:
            item.record["overlay"] = path

    def _finish(self, state: SourceState) -> None:
        m = self.model
        if state.video_tracks is not None:
            self.report.tracks[str(state.source.path)] = state.video_tracks.finish(state.folder, self._written)
            state.video_tracks = None
        finish_source(state, {"body_model": np.array(m.name), "kind": np.array(m.kind),
                              "representation": np.array(m.representation_name)}, self._written)

    def _written(self, path: Path) -> None:
        self.report.written.append(Path(path))

    def _write_summary(self, sources: List[Source]) -> DemoReport:
        m = self.model
        summary = {
            "checkpoint": m.checkpoint, "body_model": m.name, "kind": m.kind,
            "representation": m.representation_name, "inference_mapping": m.switches.inference,
            "refit": m.refit, "fit": self.opts.fit, "min_keypoint_confidence": self.opts.min_keypoint_confidence,
            "fit_config": ({"still": vars(self.fitter.config), "tracked_video_frames": vars(self.fitter.tracked_config)}
                           if self.opts.fit else None),
            "detector": self.opts.detector if self.detector is not None else None,
            "bbox_expand": self.expand, "inputs": [str(s.path) for s in sources],
            "frames": self.report.frames, "skipped": self.report.skipped,
            "frames_without_detection": self.report.no_detection, "fit_fallbacks": self.report.fit_fallbacks,
            "tracks": self.report.tracks,
            "units": "pixels (boxes, focal, keypoints, keypoint errors; *_box = fraction of the box around the used "
                     "keypoints), metres (transl, meshes), seconds, OpenCV camera frame",
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
