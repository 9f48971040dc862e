"""Measurements behind ``tools/bench_real_photos.py`` (issue 15's goals), each through the demo's own code path.

- :func:`synthetic_detected` — a synthetic body test set with ground truth: the regressor's predictions (the
  evaluation loop's, GT boxes), BlazePose run on the rendered images by the demo's detector, and
  MPJPE / PA-MPJPE before and after fitting to those detected keypoints and to the GT 2D keypoints (the ceiling);
  :func:`hmr.fitting.bench.run_benchmark` does the fitting and scoring.
- :func:`real_photos` — the demo on the photos of :mod:`hmr.demo.photos`, with and without ``--fit``: person
  found, detector score, 2D keypoint errors, fit time, and the silhouette IoU of the rendered meshes against
  MediaPipe's selfie-segmentation mask (a reference the fit never sees).
- :func:`video_speed` — the demo on a 640x480 video of one person (the astronaut photo moving): per-frame
  detection + keypoints, regression and fitting seconds from the demo's summary, with and without tracking.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np
import torch

from hmr.demo.keypoint_detectors import BODY_JOINT_SET, BlazePoseDetector
from hmr.demo.mask_iou import mask_iou
from hmr.demo.options import DemoOptions
from hmr.demo.photos import PersonSegmenter, sample_photos, write_sample_photos
from hmr.demo.predictor import DemoModel
from hmr.demo.runner import run_demo
from hmr.vis.render import Renderer

# which photos show the whole body (the IoU goal applies there): none of the three does completely
PHOTO_VIEW = {"astronaut": "upper body (hips at the bottom edge)", "camera": "most of the body (feet cut off, legs "
              "behind the coat and tripod)", "grace_hopper": "upper body (head and shoulders)"}


def detect_synthetic(set_dir: Path, limit: Optional[int], min_confidence: float, in_box: bool = False):
    """(joint set, keypoints (N, K, 2), confidence (N, K), images without a person) from the demo's BlazePose
    detector on a synthetic body set's test images (the highest-scoring person; confidence below
    ``min_confidence`` set to 0, as the demo does). ``in_box``: BlazePose's landmark network in the set's box
    (the box the regressor was given, :class:`~hmr.demo.keypoint_detectors.BoxKeypoints`) instead of its person
    detector."""
    from hmr.demo.boxes import Detection
    from hmr.demo.keypoint_detectors import BoxKeypoints
    data = np.load(Path(set_dir) / "test.npz")
    names = [str(n) for n in data["imgname"][:limit]]
    detector = BoxKeypoints() if in_box else BlazePoseDetector()
    size = None
    kps, confs, missed = [], [], 0
    for i, name in enumerate(names):
        image = cv2.imread(str(Path(set_dir) / name), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read {Path(set_dir) / name}")
        image = np.ascontiguousarray(image[..., ::-1])
        if in_box:
            side = 200.0 * float(data["scale"][i]) / 1.2  # the tight box inside the set's 1.2x crop box
            cx, cy = (float(v) for v in data["center"][i])
            found = [d for d in detector(image, [Detection((cx - side / 2, cy - side / 2, side, side))])
                     if d.keypoints is not None]
        else:
            found = detector(image)
        if not found:
            missed += 1
            kps.append(None)
            continue
        best = max(found, key=lambda d: d.score).keypoints
        size = len(best)
        kps.append(best)
    if size is None:
        raise ValueError(f"{set_dir}: BlazePose found nobody on {len(names)} images")
    arr = np.stack([k if k is not None else np.zeros((size, 3)) for k in kps])
    conf = np.where(arr[..., 2] >= min_confidence, arr[..., 2], 0.0)
    return BODY_JOINT_SET, torch.as_tensor(arr[..., :2], dtype=torch.float32), torch.as_tensor(
        conf, dtype=torch.float32), missed


def synthetic_detected(checkpoint: str, set_dir: Path, limit: int = 100, min_confidence: float = 0.3,
                       batch_size: int = 8) -> Dict:
    """MPJPE / PA-MPJPE of the regressor alone, fitted to BlazePose's keypoints (person detector + landmarks:
    ``detected``; landmarks in the regressor's box: ``detected_in_box``), and fitted to GT 2D keypoints (``gt``)."""
    from hmr.demo.fitting import demo_fit_config
    from hmr.fitting.bench import load_synthetic_labels, regressor_init, run_benchmark
    labels = load_synthetic_labels(Path(set_dir), "test", limit)
    body_model, init, _ = regressor_init(checkpoint, Path(set_dir), limit)
    config = demo_fit_config("body", min_confidence=min_confidence)  # what tools/demo.py --fit uses
    report, missed = {}, {}
    for name, in_box in (("detected", False), ("detected_in_box", True)):
        joint_set, kp, conf, missed[name] = detect_synthetic(Path(set_dir), limit, min_confidence, in_box)
        run = run_benchmark(body_model, labels, init, config, ("gt", "detected") if not in_box else ("detected",),
                            batch_size, init_name=f"regressor {checkpoint}", detections=(joint_set, kp, conf))
        if not report:
            report = run
        else:
            report["conditions"][name] = run["conditions"]["detected"]
    report.update(images_without_person=missed, set=str(set_dir), checkpoint=str(checkpoint))
    return report


def _mesh_mask(renderer: Renderer, npz_paths: List[Path], faces: np.ndarray) -> np.ndarray:
    mask = np.zeros((renderer.height, renderer.width), bool)
    for path in npz_paths:
        with np.load(path) as person:
            mask |= renderer.render(person["vertices"], faces, person["K"]).mask
    return mask


def real_photos(model: DemoModel, out: Path) -> Dict[str, Dict]:
    """Per photo: people found, detector score, keypoint errors, fit seconds, IoU of the regressor's and the
    fitted meshes against the selfie-segmentation mask. Writes the photos, both demo runs (overlays included)
    and the masks under ``out``."""
    out = Path(out)
    write_sample_photos(out / "photos")
    reports = {}
    for name, fit in (("regressor", False), ("fit", True)):
        opts = DemoOptions(out=out / name, detector="auto", fit=fit, progress=False, meshes=False)
        reports[name] = run_demo(model, out / "photos", opts)
    segmenter = PersonSegmenter()
    results = {}
    for photo_name, image in sample_photos().items():
        h, w = image.shape[:2]
        seg = segmenter(image)
        cv2.imwrite(str(out / f"{photo_name}_selfie_mask.png"), seg.astype(np.uint8) * 255)
        renderer = Renderer(w, h)
        row: Dict[str, object] = {"view": PHOTO_VIEW[photo_name]}
        for run in ("regressor", "fit"):
            frame = next(f for f in reports[run].frames if f["name"] == photo_name)
            people = frame.get("people", [])
            row[f"{run}_people"] = len(people)
            if not people:
                continue
            paths = [Path(p["outputs"][0]) for p in people]
            row[f"{run}_iou"] = round(mask_iou(_mesh_mask(renderer, paths, model.faces), seg), 4)
            if run == "fit":
                best = people[0]
                row.update(score=best["score"], source=best["source"], keypoint_error=best.get("keypoint_error"),
                           fit=best.get("fit"), overlay=frame.get("overlay"))
        results[photo_name] = row
    return results


def make_video(path: Path, frames: int = 30, size=(480, 640)) -> Path:
    """A ``size`` (h, w) video of the astronaut photo drifting sideways (up to 8 px per frame), MJPG .avi. (BlazePose's
    person detector does not find the cameraman at this size: score below its 0.5 threshold.)"""
    h, w = size
    photo = cv2.resize(sample_photos()["astronaut"], (h, h), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}")
    for t in range(frames):
        frame = np.full((h, w, 3), 110, np.uint8)
        x = int(round((w - h) / 2 + 40 * np.sin(2 * np.pi * t / max(frames, 2))))
        frame[:, x:x + h] = photo
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


def _median(values: List[float]) -> Optional[float]:
    return round(float(np.median(values)), 4) if values else None


def video_speed(model: DemoModel, out: Path, frames: int = 30) -> Dict[str, Dict]:
    """Median per-frame seconds of detection + keypoints, regression and fitting on a 640x480 single-person video,
    tracking on (MediaPipe's video mode) and off (the person detector on every frame); with tracking also with the
    regressor's own alignment pass instead of the detected keypoints' alignment (``align_from_keypoints``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    video = make_video(out / "walk_640x480.avi", frames)
    results = {}
    for mode, track, keypoint_alignment in (("tracking", True, True), ("tracking, own alignment pass", True, False),
                                            ("detector every frame", False, True)):
        tag = ("track" if track else "detect") + ("" if keypoint_alignment else "_own_alignment")
        opts = DemoOptions(out=out / tag, detector="auto", fit=True, batch_size=1, track=track, progress=False,
                           meshes=False, side_view=False, align_from_keypoints=keypoint_alignment)
        report = run_demo(model, video, opts)
        det = [f["seconds"]["detection"] for f in report.frames]
        reg = [f["seconds"]["regression"] for f in report.frames]
        fit = [p["fit"]["seconds"] for f in report.frames for p in f.get("people", []) if "seconds" in p.get("fit", {})]
        first = fit[:1]
        per_frame = [d + r for d, r in zip(det, reg)]
        results[mode] = {
            "frames": len(report.frames), "frames_with_person": sum(bool(f.get("people")) for f in report.frames),
            "detection_s": _median(det), "regression_s": _median(reg), "detect_plus_regress_s": _median(per_frame),
            "fps": round(1.0 / float(np.median(per_frame)), 2) if per_frame else None,
            "fit_s_first_frame": _median(first), "fit_s_later_frames": _median(fit[1:]),
            "fit_statuses": sorted({p["fit"]["status"] for f in report.frames for p in f.get("people", [])}),
        }
        (out / f"speed_{tag}.json").write_text(json.dumps(results[mode], indent=1))
    return results
