"""Person / hand detectors for the demo, all offline (nothing is ever downloaded).

A detector is any callable ``detector(image: HxWx3 uint8 RGB) -> list[Detection]``. :func:`build_detector`
turns the ``--detector`` value into one:

- ``auto``: ``blazepose`` for body checkpoints and ``hands`` for hand checkpoints; where the converted MediaPipe
  networks are missing (a warning says so), bodies fall back to confident ``hog`` detections (SVM score ≥ 1),
  else ``face``, else the weaker ``hog`` ones (HOG misses half-body portraits and fires on round objects there;
  a face is the better cue in such photos), and hands to no detector;
- ``blazepose``: people + 33 keypoints (MediaPipe BlazePose in PyTorch, :mod:`hmr.demo.keypoint_detectors`);
- ``hands``: hands + 21 keypoints + handedness (MediaPipe Hands in PyTorch);
- ``hog``: OpenCV's built-in HOG + linear-SVM people detector (OpenCV 4.x; OpenCV 5 removed ``HOGDescriptor``);
- ``face``: scikit-image's bundled LBP frontal-face cascade, each face extended to a standing-person box
  (a heuristic for photographs where HOG is unavailable);
- ``none``: no detector (the caller falls back to the whole image);
- a path to a local ultralytics model file (``.pt``/``.onnx``/…; needs the ``ultralytics`` package);
- ``module:function`` or ``file.py:function``: the plug-in point — ``function()`` must return a detector;
- any name registered with :func:`register_detector`.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Callable, Dict, List, Optional

import cv2
import numpy as np

from hmr.demo.boxes import Detection
from hmr.video.tracking import box_iou  # noqa: F401 (the demo's box IoU; re-exported)

log = logging.getLogger(__name__)

Detector = Callable[[np.ndarray], List[Detection]]
_REGISTRY: Dict[str, Callable[[str], Detector]] = {}
MODEL_SUFFIXES = (".pt", ".pth", ".onnx", ".engine", ".torchscript", ".mlpackage", ".tflite")


class DetectorError(RuntimeError):
    """A detector cannot be built here (missing package, missing file, bad plug-in)."""


def register_detector(name: str, factory: Callable[[str], Detector]) -> None:
    """Make ``--detector name`` build ``factory(kind)`` (``kind`` is ``"body"`` or ``"hand"``)."""
    _REGISTRY[name] = factory


def hog_available() -> bool:
    """Whether the installed OpenCV still ships the HOG people detector."""
    return hasattr(cv2, "HOGDescriptor") and hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector")


def nms(detections: List[Detection], iou_threshold: float = 0.45) -> List[Detection]:
    """Greedy non-maximum suppression by score (highest first)."""
    order = sorted(detections, key=lambda d: -d.score)
    kept: List[Detection] = []
    for det in order:
        if all(box_iou(det.bbox, k.bbox) < iou_threshold for k in kept):
            kept.append(det)
    return kept


class HogPeopleDetector:
    """OpenCV's default HOG people detector. Its 64×128 window holds a person about 96 px tall, so boxes are
    shrunk to 3/4 of their height and 1/2 of their width around the centre to approximate a tight box."""

    def __init__(self, min_score: float = 0.5, max_side: int = 800) -> None:
        if not hog_available():
            raise DetectorError(f"--detector hog: this OpenCV ({cv2.__version__}) has no HOGDescriptor "
                                "(removed in OpenCV 5); use --detector face, --bbox or --detections")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.min_score, self.max_side = min_score, max_side

    def __call__(self, image: np.ndarray) -> List[Detection]:
        gray, factor = _downscaled_gray(image, self.max_side)
        rects, weights = self.hog.detectMultiScale(gray, winStride=(8, 8), padding=(8, 8), scale=1.05)
        found = []
        for (x, y, w, h), score in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            if score < self.min_score:
                continue
            cx, cy = (x + w / 2) / factor, (y + h / 2) / factor
            tw, th = 0.5 * w / factor, 0.75 * h / factor
            found.append(Detection((cx - tw / 2, cy - th / 2, tw, th), float(score), "hog"))
        return nms(found)


class FacePersonDetector:
    """Faces from scikit-image's bundled LBP cascade, each extended to a standing person: height = 8 face
    sizes from 0.4 face sizes above the face box, width = 0.4 × height (centred on the face). Faces smaller
    than 0.7 × the largest one are dropped (the cascade's false positives are mostly small)."""

    def __init__(self, max_side: int = 640, min_face: int = 20, keep_ratio: float = 0.7) -> None:
        import skimage.data
        from skimage.feature import Cascade

        self.cascade = Cascade(skimage.data.lbp_frontal_face_cascade_filename())
        self.max_side, self.min_face, self.keep_ratio = max_side, min_face, keep_ratio

    def __call__(self, image: np.ndarray) -> List[Detection]:
        gray, factor = _downscaled_gray(image, self.max_side)
        h, w = gray.shape
        faces = self.cascade.detect_multi_scale(img=gray.astype(np.float64) / 255.0, scale_factor=1.2,
                                                step_ratio=1, min_size=(self.min_face, self.min_face),
                                                max_size=(h, w))
        if not faces:
            return []
        largest = max(f["width"] for f in faces)
        found = []
        for f in faces:
            if f["width"] < self.keep_ratio * largest:
                continue
            size = f["width"] / factor
            cx = (f["c"] + f["width"] / 2) / factor
            top = f["r"] / factor - 0.4 * size
            height = 8.0 * size
            found.append(Detection((cx - 0.2 * height, top, 0.4 * height, height), float(f["width"] / largest),
                                   "face", extra={"face_xywh": [float(f["c"] / factor), float(f["r"] / factor),
                                                               size, size]}))
        return nms(found)


class UltralyticsDetector:
    """A local ultralytics model file (YOLO family); bodies keep COCO class 0 (person), hands keep every box."""

    def __init__(self, model_path: Path, kind: str, min_score: float = 0.3) -> None:
        if not Path(model_path).is_file():
            raise DetectorError(f"detector model file not found: {model_path} (nothing is downloaded)")
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise DetectorError(f"--detector {model_path}: the 'ultralytics' package is not installed "
                                f"({exc}); install it or use --detector face/hog/none") from exc
        self.model = YOLO(str(model_path))
        self.kind, self.min_score = kind, min_score

    def __call__(self, image: np.ndarray) -> List[Detection]:
        result = self.model.predict(image[..., ::-1], verbose=False)[0]   # ultralytics expects BGR arrays
        boxes = result.boxes
        xyxy = boxes.xyxy.cpu().numpy()
        scores = boxes.conf.cpu().numpy()
        classes = boxes.cls.cpu().numpy().astype(int)
        found = []
        for (x1, y1, x2, y2), score, cls in zip(xyxy, scores, classes):
            if score < self.min_score or (self.kind == "body" and cls != 0) or x2 <= x1 or y2 <= y1:
                continue
            found.append(Detection((x1, y1, x2 - x1, y2 - y1), float(score), "ultralytics"))
        return found


def _downscaled_gray(image: np.ndarray, max_side: int):
    """Grey image with its longest side ≤ ``max_side`` and the factor applied (detections / factor = pixels)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    factor = min(1.0, max_side / max(gray.shape))
    if factor < 1.0:
        gray = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return gray, factor


def _plugin(spec: str) -> Detector:
    """``module:function`` or ``file.py:function`` → ``function()``."""
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise DetectorError(f"detector plug-in file not found: {path}")
            module_spec = importlib.util.spec_from_file_location(f"hmr_demo_plugin_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(target)
        factory = getattr(module, attr)
    except DetectorError:
        raise
    except Exception as exc:  # noqa: BLE001 - any import failure is reported with the spec
        raise DetectorError(f"cannot load detector plug-in {spec!r} (expected module:function or "
                            f"file.py:function): {exc}") from exc
    detector = factory()
    if not callable(detector):
        raise DetectorError(f"detector plug-in {spec!r} returned {type(detector).__name__}, not a callable "
                            "image -> list of boxes")
    return _wrap_plugin(detector, spec)


def _wrap_plugin(detector: Callable, spec: str) -> Detector:
    """Accept plug-ins returning Detection objects, (x, y, w, h) tuples or (x, y, w, h, score) tuples."""
    def run(image: np.ndarray) -> List[Detection]:
        found = []
        for item in detector(image) or []:
            if isinstance(item, Detection):
                found.append(item)
            else:
                values = list(item)
                score = float(values[4]) if len(values) > 4 else 1.0
                found.append(Detection(values[:4], score, f"plugin:{spec}"))
        return found
    return run


def cascade(primary: Detector, fallback: Detector, confident: float) -> Detector:
    """``primary``'s detections scoring ≥ ``confident``; else ``fallback``'s; else ``primary``'s weaker ones."""
    def run(image: np.ndarray) -> List[Detection]:
        found = primary(image)
        strong = [d for d in found if d.score >= confident]
        return strong or fallback(image) or found
    return run


def _keypoint_detector(name: str, kind: str) -> Detector:
    """``blazepose`` (bodies) / ``hands`` (hands) for a checkpoint of ``kind``; DetectorError if they do not fit."""
    from hmr.demo import keypoint_detectors as kd
    wants = "body" if name == "blazepose" else "hand"
    if kind != wants:
        other = "hands" if kind == "hand" else "blazepose"
        raise DetectorError(f"--detector {name} finds {'people' if wants == 'body' else 'hands'}, but this is a "
                            f"{kind} checkpoint: use --detector {other} (or auto)")
    problem = kd.missing_networks(kind)
    if problem is not None:
        raise DetectorError(f"--detector {name}: {problem}")
    return kd.BlazePoseDetector() if kind == "body" else kd.HandsDetector()


def build_detector(spec: str, kind: str) -> Optional[Detector]:
    """The detector named by ``spec`` for ``kind`` (``"body"``/``"hand"``); None for ``"none"``."""
    if spec in _REGISTRY:
        return _REGISTRY[spec](kind)
    if spec == "none":
        return None
    if spec == "auto":
        from hmr.demo.keypoint_detectors import missing_networks
        problem = missing_networks(kind)
        if problem is None:
            return _keypoint_detector("blazepose" if kind == "body" else "hands", kind)
        log.warning("--detector auto: %s; falling back to %s", problem,
                    "HOG/face person boxes" if kind == "body" else "the whole image")
    if spec in ("auto", "hog", "face"):
        if kind == "hand":
            if spec != "auto":
                raise DetectorError(f"--detector {spec} finds people, not hands; give hand boxes with --bbox or "
                                    "--detections (boxes or hand keypoints), --detector hands, or a local hand "
                                    "model file")
            return None
        if spec == "hog":
            return HogPeopleDetector()
        if spec == "auto" and hog_available():
            return cascade(HogPeopleDetector(), FacePersonDetector(), confident=1.0)
        return FacePersonDetector()
    path = Path(spec)
    if path.suffix.lower() in MODEL_SUFFIXES:
        return UltralyticsDetector(path, kind)
    if ":" in spec:
        return _plugin(spec)
    raise DetectorError(f"unknown --detector {spec!r}: expected auto, blazepose, hands, hog, face, none, a local "
                        f"model file ({', '.join(MODEL_SUFFIXES)}), module:function or file.py:function")


def gives_keypoints(detector: Optional[Detector]) -> bool:
    """Whether ``detector`` returns keypoints with its boxes (the MediaPipe detectors)."""
    return bool(getattr(detector, "gives_keypoints", False))


register_detector("blazepose", lambda kind: _keypoint_detector("blazepose", kind))
register_detector("hands", lambda kind: _keypoint_detector("hands", kind))
