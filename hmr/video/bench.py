"""Measure the video pipeline on rendered sequences with ground truth (``tools/bench_video.py``).

For each sequence (``labels.npz`` + ``video.mp4``, :mod:`hmr.data.synthetic.sequences`): the demo runs on the video
(boxes from a detector, or the ground-truth boxes to isolate tracking and smoothing from detection), then

- tracking: CLEAR-MOT counts of the demo's per-frame track ids against the ground-truth person ids;
- per ground-truth person, the track that covered it longest: MPJPE and acceleration error of its root-aligned
  SPIN-24 joints, per frame (the regressor's raw output) and smoothed (the exported track), against the joints of
  the ground-truth parameters posed by the same body model.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from hmr.video.metrics import acceleration_error, clear_mot, mpjpe

ROOT_JOINTS = (2, 3)   # SPIN-24 hips: joints are aligned on their mean, as the body protocols do


def root_aligned_joints(body_model, rotmats: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(T, 24, 3) SPIN-24 keypoints in millimetres, minus the mean of the hips."""
    with torch.no_grad():
        out = body_model(full_pose=torch.as_tensor(rotmats, dtype=torch.float32),
                         betas=torch.as_tensor(betas, dtype=torch.float32))
        kp = body_model.keypoints(out.vertices, out.joints, "spin24").double().numpy()
    return 1e3 * (kp - kp[:, list(ROOT_JOINTS)].mean(axis=1, keepdims=True))


MIN_VISIBLE = 0.3   # people less visible than this are "don't care" for tracking (not given, not required)


def ground_truth(labels: Dict[str, np.ndarray], min_visible: float = MIN_VISIBLE) -> Dict[int, Dict[str, np.ndarray]]:
    """Per person id: frame indices, boxes, rotations and shape of the frames where at least ``min_visible`` of
    the person is visible (rows sorted by frame)."""
    people = {}
    visible = labels["visible_fraction"] >= min_visible
    for pid in np.unique(labels["person_id"]):
        rows = np.flatnonzero((labels["person_id"] == pid) & visible)
        rows = rows[np.argsort(labels["frame_index"][rows])]
        people[int(pid)] = {"frames": labels["frame_index"][rows].astype(int), "bbox": labels["bbox_xywh"][rows],
                            "rotmat": labels["rotmat"][rows], "shape": labels["shape"][rows]}
    return people


def detections_from_labels(labels: Dict[str, np.ndarray], path: Path) -> Path:
    """The ground-truth boxes as a detections file keyed by frame number (``tools/demo.py --detections``)."""
    boxes: Dict[str, List[Dict[str, Any]]] = {}
    for f, box, seen in zip(labels["frame_index"], labels["bbox_xywh"], labels["visible_fraction"]):
        if seen >= MIN_VISIBLE and box[2] > 1 and box[3] > 1:
            boxes.setdefault(str(int(f)), []).append({"bbox": [float(v) for v in box], "score": 1.0})
    path.write_text(json.dumps(boxes))
    return path


def _segments(frames: np.ndarray) -> List[np.ndarray]:
    """Index runs of consecutive frame numbers (acceleration needs three frames in a row)."""
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    return [s for s in np.split(np.arange(len(frames)), breaks) if len(s) >= 3]


def person_errors(body_model, gt: Dict[str, np.ndarray], track: Dict[str, np.ndarray]) -> Dict[str, float]:
    """MPJPE (mm) and acceleration error (mm/frame²) of one track against one person, raw and smoothed."""
    common, gi, ti = np.intersect1d(gt["frames"], track["frame_index"], return_indices=True)
    if len(common) < 3:
        return {"frames": int(len(common))}
    truth = root_aligned_joints(body_model, gt["rotmat"][gi], gt["shape"][gi])
    raw = root_aligned_joints(body_model, track["rotmats_per_frame"][ti], track["betas_per_frame"][ti])
    smooth = root_aligned_joints(body_model, track["rotmats"][ti],
                                 np.repeat(track["betas"][None], len(ti), axis=0))
    segs = _segments(common)
    accel = lambda p: float(np.mean([acceleration_error(p[s], truth[s]) for s in segs]))  # noqa: E731
    return {"frames": int(len(common)), "mpjpe_raw": mpjpe(raw, truth), "mpjpe_smooth": mpjpe(smooth, truth),
            "accel_raw": accel(raw), "accel_smooth": accel(smooth), "accel_gt": float(np.mean(
                [np.linalg.norm(truth[s][:-2] - 2 * truth[s][1:-1] + truth[s][2:], axis=-1).mean() for s in segs]))}


def evaluate_sequence(seq_dir: Path, model, out_dir: Path, boxes: str = "gt", smoothing: str = "savgol",
                      smooth_window: int = 9, progress: bool = False, region_tracking: bool = True) -> Dict[str, Any]:
    """Run the demo on one sequence and score it (``boxes``: ``gt`` or a detector name; ``region_tracking``:
    the keypoint detectors follow last frame's people, MediaPipe's video mode, instead of detecting anew)."""
    from hmr import body
    from hmr.demo.options import DemoOptions
    from hmr.demo.runner import run_demo
    with np.load(Path(seq_dir) / "labels.npz", allow_pickle=False) as data:
        labels = {k: data[k] for k in data.files}
    out_dir.mkdir(parents=True, exist_ok=True)
    options = DemoOptions(out=out_dir, detector=boxes if boxes != "gt" else "auto", side_view=False,
                          meshes=False, progress=progress, smoothing=smoothing, smooth_window=smooth_window,
                          exports=("npz",), fallback_whole_image=False, track=region_tracking)
    if boxes == "gt":
        options.detections = detections_from_labels(labels, out_dir / "gt_boxes.json")
    started = time.perf_counter()
    report = run_demo(model, Path(seq_dir) / "video.mp4", options)
    seconds = time.perf_counter() - started
    summary = json.loads(report.summary_path.read_text())
    people = ground_truth(labels)
    frames = sorted({int(f) for f in labels["frame_index"]})
    gt_frames = [{pid: p["bbox"][list(p["frames"]).index(f)] for pid, p in people.items() if f in p["frames"]}
                 for f in frames]
    by_frame = {int(r["frame"]): {int(p["track_id"]): p["bbox_xywh"] for p in r.get("people", [])}
                for r in summary["frames"] if "frame" in r}
    faint = labels["visible_fraction"] < MIN_VISIBLE
    ignored = [{int(pid): box for pid, box, fr, low in zip(labels["person_id"], labels["bbox_xywh"],
                                                           labels["frame_index"], faint) if low and fr == f}
               for f in frames]
    counts, coverage = clear_mot(gt_frames, [by_frame.get(f, {}) for f in frames], ignored_frames=ignored)
    body_model = body.load(model.name)
    per_person = []
    for pid, gt in people.items():
        record: Dict[str, Any] = {"person_id": pid}
        if coverage.get(pid):
            track_id = max(coverage[pid], key=coverage[pid].get)
            path = out_dir / "video" / "tracks" / f"track_{track_id:02d}.npz"
            if path.is_file():
                with np.load(path, allow_pickle=False) as data:
                    record.update(track_id=track_id, **person_errors(body_model, gt, {k: data[k] for k in data.files}))
        per_person.append(record)
    return {"sequence": Path(seq_dir).name, "frames": len(frames), "people": len(people), "boxes": boxes,
            "smoothing": smoothing, "seconds": round(seconds, 1), "fps": round(len(frames) / seconds, 2),
            "mot": counts.as_dict(), "per_person": per_person}


def summarize(results: List[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """Frame-weighted means over every scored person of every sequence, and the ratios the issue asks for."""
    scored = [p for r in results for p in r["per_person"] if "accel_raw" in p]
    if not scored:
        return {"people": 0}
    w = np.array([p["frames"] for p in scored], dtype=float)
    mean = lambda k: float(np.average([p[k] for p in scored], weights=w))  # noqa: E731
    out = {k: mean(k) for k in ("mpjpe_raw", "mpjpe_smooth", "accel_raw", "accel_smooth", "accel_gt")}
    out["accel_reduction"] = out["accel_raw"] / max(out["accel_smooth"], 1e-9)
    out["mpjpe_change_pct"] = 100.0 * (out["mpjpe_smooth"] / out["mpjpe_raw"] - 1.0)
    out["id_switches"] = int(sum(r["mot"]["id_switches"] for r in results))
    out["people"] = len(scored)
    return out
