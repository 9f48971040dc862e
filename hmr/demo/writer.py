"""The demo's per-frame files: each person's parameters (.npz; a video's rows gathered into ``params.npz``) and
meshes (.obj/.ply), the overlay (.png per image, a frame of ``overlay.mp4`` per video) with the detected
keypoints drawn on it, and the summary entry describing the person."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np

from hmr.demo.boxes import Detection
from hmr.demo.draw import draw_keypoints
from hmr.demo.export import VideoWriter, overlay_view, parameter_arrays, save_mesh, save_params, stack_params
from hmr.demo.inputs import Frame, Source
from hmr.demo.predictor import CropInput, PersonPrediction
from hmr.utils.file_errors import naming_path
from hmr.utils.io import save_npz
from hmr.vis.overlay import intrinsics, overlay_panel, save_png


@dataclass
class SourceState:
    """Per input: its output folder, the open overlay video and parameter rows (videos), the people tracked from
    the previous frame (keypoint fitting), and how many of its frames still wait for predictions."""

    source: Source
    folder: Path
    video: Optional[VideoWriter] = None
    rows: List[Dict[str, np.ndarray]] = field(default_factory=list)
    tracks: Optional[dict] = None            # the previous frame's fits by track id (keypoint fitting)
    video_tracks: Optional[object] = None   # hmr.demo.video_tracks.VideoTracks of a video
    exhausted: bool = False
    pending: int = 0


def person_entry(k: int, det: Detection, crop: CropInput, person: PersonPrediction, kind: str,
                 side: Optional[str], extra: Dict[str, object]) -> Dict[str, object]:
    """The summary record of one person (``extra``: keypoints, keypoint error, fit)."""
    entry = dict(det.to_json(), person=k, center=[round(float(v), 2) for v in crop.center],
                 scale=round(float(crop.scale), 4), body_model=person.body_model, mirrored=person.mirrored,
                 transl=[round(float(v), 4) for v in person.transl])
    if "landmark_score" in det.extra:
        entry["landmark_score"] = round(float(det.extra["landmark_score"]), 4)
    if kind == "hand":
        entry["side"] = side
    entry.update(extra)
    return entry


def person_arrays(det: Detection, crop: CropInput, image_size, representation: str,
                  fit_status: Optional[str]) -> Dict[str, np.ndarray]:
    """Per-person arrays saved next to the parameters: camera, box, score, keypoints, fit status."""
    meta = {"focal_length": np.float32(crop.focal), "bbox_xywh": np.asarray(det.bbox, np.float32),
            "center": crop.center.astype(np.float32), "scale": np.float32(crop.scale),
            "img_size": np.array(image_size), "score": np.float32(det.score),
            "representation": np.array(representation)}
    if det.keypoints is not None:
        meta.update(keypoints_detected=det.keypoints.astype(np.float32), keypoints_joint_set=np.array(det.joint_set))
    if "landmarks" in det.extra:
        meta.update(landmarks=np.asarray(det.extra["landmarks"], np.float32),
                    landmark_format=np.array(det.extra["landmark_format"]))
    if fit_status is not None:
        meta["fit_status"] = np.array(fit_status)
    return meta


def write_person(state: SourceState, frame: Frame, k: int, person: PersonPrediction, kind: str,
                 meta: Dict[str, np.ndarray], meshes: bool, video_meshes: bool,
                 written: Callable[[Path], None]) -> List[str]:
    """Write one person's files (or queue a video row); returns the paths to list in the summary entry."""
    is_video = frame.source.kind == "video"
    outputs: List[str] = []
    if is_video:
        row = parameter_arrays(person, kind)
        row.update({key: np.asarray(v)[None] for key, v in meta.items() if key != "representation"})
        row.update(frame_index=np.array([frame.index]), person_index=np.array([k]),
                   mirrored=np.array([person.mirrored]))
        state.rows.append(row)
    else:
        stem = state.folder / f"person{k:02d}"
        with naming_path(stem.with_suffix(".npz")):
            save_params(stem.with_suffix(".npz"), person, kind, meta)
        outputs.append(str(stem.with_suffix(".npz")))
    if meshes and (not is_video or video_meshes):
        base = (state.folder / "meshes" / f"{frame.name}_person{k:02d}" if is_video
                else state.folder / f"person{k:02d}")
        for suffix in (".obj", ".ply"):
            with naming_path(base.with_suffix(suffix)):
                save_mesh(base.with_suffix(suffix), person.vertices, person.faces)
            written(base.with_suffix(suffix))
        if not is_video:
            outputs += [str(base.with_suffix(".obj")), str(base.with_suffix(".ply"))]
    if not is_video:
        written(Path(outputs[0]))
    return outputs


def overlay_image(image: np.ndarray, focal: float, people: Sequence[PersonPrediction], faces: np.ndarray,
                  detections: Sequence[Detection], max_side: int, side_view: bool,
                  min_confidence: Optional[float], track_ids: Optional[Sequence[int]] = None) -> tuple:
    """(panel, scale): the meshes over the image (scaled to at most ``max_side``) | side view, with each
    detection's keypoints drawn on the image half (``min_confidence`` None: no keypoints) and, in videos, its
    track id above its box."""
    h, w = image.shape[:2]
    view, K, scale = overlay_view(image, intrinsics(focal, h, w), max_side)
    if people:
        panel = overlay_panel(view, [p.vertices for p in people], faces, K, side_view=side_view)
    else:
        panel = np.concatenate([view, np.full_like(view, 255)], axis=1) if side_view else view.copy()
    if min_confidence is not None:
        left = np.ascontiguousarray(panel[:, :view.shape[1]])
        for det in detections:
            if det.keypoints is not None:
                draw_keypoints(left, det.keypoints, det.joint_set, min_confidence, scale)
        panel[:, :view.shape[1]] = left
    for det, track_id in zip(detections, track_ids or []):
        x, y = int(det.bbox[0] * scale), max(int(det.bbox[1] * scale) - 4, 12)
        for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):   # outlined: readable on any image
            cv2.putText(panel, f"id {track_id}", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, thickness,
                        cv2.LINE_AA)
    return panel, scale


def write_overlay(state: SourceState, frame: Frame, panel: np.ndarray,
                  written: Callable[[Path], None]) -> Optional[str]:
    """Append ``panel`` to the source's video, or save it as ``overlay.png``; returns the PNG path."""
    if frame.source.kind == "video":
        with naming_path(state.video.path):
            state.video.write(panel)
        return None
    path = state.folder / "overlay.png"
    with naming_path(path):
        save_png(path, panel)
    written(path)
    return str(path)


def finish_source(state: SourceState, model_arrays: Dict[str, np.ndarray], written: Callable[[Path], None]) -> None:
    """Close a video's overlay and write its ``params.npz`` (one row per detection)."""
    if state.video is not None:
        with naming_path(state.video.path):
            closed = state.video.close()
        if closed:
            written(state.video.path)
        state.video = None
        if state.rows:
            path = state.folder / "params.npz"
            arrays = stack_params(state.rows)
            arrays.update(model_arrays)
            with naming_path(path):
                save_npz(path, **arrays)
            written(path)
        state.rows = []
