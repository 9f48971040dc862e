"""Boxes from a detections file (``--detections``): COCO-style boxes, or keypoints (body or hand) to box.

Accepted layouts (boxes are COCO ``[x, y, w, h]`` pixels):

- COCO: ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "bbox", "score"?}]}``;
- a list of entries naming their image: ``[{"image" | "file_name" | "image_id" | "frame": key, "bbox": …}]``
  (COCO results files are this form);
- a mapping ``{image key: [entry | [x, y, w, h], …]}``; a video's frames are keyed by frame number;
- OpenPose output: ``{"people": [...]}`` for a single image, or a folder of ``<stem>.json`` /
  ``<stem>_keypoints.json`` files.

An entry may give ``bbox``; or keypoints (``keypoints`` / ``pose_keypoints_2d``: flat x, y, confidence), boxed
tightly. Keypoints in a known layout also travel with the box for ``--fit``: 25 body points = OpenPose BODY_25
(``openpose25``), 18 = OpenPose COCO-18 (``coco18``), 21 hand points = OpenPose/FreiHAND order (``freihand21``).
For hands: ``hand_left_keypoints_2d`` / ``hand_right_keypoints_2d`` (OpenPose), ``lefthand_box`` / ``righthand_box``
or ``lefthand_kpts`` / ``righthand_kpts`` (COCO-WholeBody), or ``bbox`` with ``"side"``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import numpy as np

from hmr.demo.boxes import HAND_SIDES, Detection, box_from_keypoints
from hmr.demo.inputs import Frame

log = logging.getLogger(__name__)
IMAGE_KEYS = ("image", "file_name", "image_id", "frame", "img", "imgname")
HAND_KEYPOINT_KEYS = {"left": ("hand_left_keypoints_2d", "lefthand_kpts"),
                      "right": ("hand_right_keypoints_2d", "righthand_kpts")}
HAND_BOX_KEYS = {"left": "lefthand_box", "right": "righthand_box"}
BODY_KEYPOINT_KEYS = ("keypoints", "pose_keypoints_2d")
KEYPOINT_LAYOUTS = {"body": {25: "openpose25", 18: "coco18"}, "hand": {21: "freihand21"}}


def _with_keypoints(bbox, score: float, source: str, side: Optional[str], kp: np.ndarray, kind: str) -> Detection:
    """A detection carrying ``kp`` when its row count names a joint set (:data:`KEYPOINT_LAYOUTS`)."""
    joint_set = KEYPOINT_LAYOUTS[kind].get(len(kp))
    return Detection(bbox, score, source, side=side, keypoints=kp if joint_set else None, joint_set=joint_set)


class DetectionFileError(ValueError):
    """The detections file is missing or not in an accepted layout."""


def _keypoints(flat: Any, key: str) -> Optional[np.ndarray]:
    try:
        arr = np.asarray(flat, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a flat list of numbers x, y, confidence, ...; got {flat!r}") from None
    if arr.size == 0 or arr.size % 3:
        return None
    return arr.reshape(-1, 3)


def _score(value: Any) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = float("nan")
    if not np.isfinite(score):
        raise ValueError(f"score must be a finite number, got {value!r}")
    return score


def entry_detections(entry: Any, kind: str, source: str) -> List[Detection]:
    """Detections described by one entry (a dict or a bare [x, y, w, h] list) for ``kind`` body/hand.

    Raises ValueError describing a bad value (the caller names the file and the image)."""
    if isinstance(entry, (list, tuple)):
        return [Detection(entry[:4], _score(entry[4]) if len(entry) > 4 else 1.0, source)]
    if not isinstance(entry, dict):
        raise ValueError(f"a detection must be a dict or [x, y, w, h], got {entry!r}")
    score = _score(entry.get("score", 1.0))
    side = entry.get("side", entry.get("hand"))
    if kind == "body" or side is not None:
        if side is not None and side not in HAND_SIDES:
            raise ValueError(f"hand side must be 'left' or 'right', got {side!r}")
        if "bbox" in entry:
            return [Detection(entry["bbox"], score, source, side=side)]
        keys = BODY_KEYPOINT_KEYS if kind == "body" else ("keypoints",)
        for key in keys:
            kp = _keypoints(entry.get(key, []), key)
            box = None if kp is None else box_from_keypoints(kp)
            if box is not None:
                return [_with_keypoints(box, score, f"{source}:{key}", side, kp, kind)]
        return []
    found = []
    for hand_side in HAND_SIDES:
        box_key = HAND_BOX_KEYS[hand_side]
        valid = entry.get(box_key.replace("box", "valid"), True)
        if box_key in entry and valid and np.asarray(entry[box_key]).size == 4 and entry[box_key][2] > 0:
            found.append(Detection(entry[box_key], score, f"{source}:{box_key}", side=hand_side))
            continue
        for key in HAND_KEYPOINT_KEYS[hand_side]:
            kp = _keypoints(entry.get(key, []), key)
            box = None if kp is None else box_from_keypoints(kp)
            if box is not None:
                found.append(_with_keypoints(box, score, f"{source}:{key}", hand_side, kp, "hand"))
                break
    if not found and "bbox" in entry:
        found.append(Detection(entry["bbox"], score, source))
    return found


def _key_variants(key: Any) -> Iterable[str]:
    text = str(key)
    yield text
    path = Path(text)
    yield path.name
    yield path.stem


class DetectionFile:
    """Per-image detections read from a file or an OpenPose output folder; :meth:`lookup` by frame."""

    def __init__(self, path: Union[str, Path], kind: str, image: Optional[str] = None) -> None:
        self.path, self.kind = Path(path), kind
        # the image a single-image OpenPose file belongs to (named in error messages)
        self.image_label = image or f"{self.path.stem} (single-image file)"
        self.folder: Optional[Path] = None
        self.single: Optional[List[Detection]] = None
        self.by_key: Dict[str, List[Detection]] = {}
        if self.path.is_dir():
            self.folder = self.path
            return
        if not self.path.is_file():
            raise DetectionFileError(f"detections file not found: {self.path}")
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise DetectionFileError(f"cannot read detections JSON {self.path}: {exc}") from exc
        self._parse(data)

    def _add(self, key: Any, detections: List[Detection]) -> None:
        for variant in set(_key_variants(key)):
            self.by_key.setdefault(variant, []).extend(detections)

    def _detections(self, entries: Iterable[Any], image: Any) -> List[Detection]:
        """Detections of ``entries`` for one image; a bad value is a DetectionFileError naming file and image."""
        try:
            return [d for entry in entries for d in entry_detections(entry, self.kind, self.path.name)]
        except ValueError as exc:
            raise DetectionFileError(f"{self.path}: detection for image {image!r}: {exc}") from None

    def _parse(self, data: Any) -> None:
        if isinstance(data, dict) and "people" in data:
            self.single = self._detections(data["people"], self.image_label)
        elif isinstance(data, dict) and "annotations" in data:
            names = {img["id"]: img.get("file_name", img["id"]) for img in data.get("images", [])}
            for name in names.values():
                self._add(name, [])
            for ann in data["annotations"]:
                key = names.get(ann.get("image_id"), ann.get("image_id"))
                self._add(key, self._detections([ann], key))
        elif isinstance(data, list):
            for entry in data:
                key = next((entry[k] for k in IMAGE_KEYS if isinstance(entry, dict) and k in entry), None)
                if key is None:
                    raise DetectionFileError(f"{self.path}: each entry of a detection list must name its image "
                                             f"with one of {IMAGE_KEYS}; got {entry!r}")
                self._add(key, self._detections([entry], key))
        elif isinstance(data, dict):
            for key, entries in data.items():
                if isinstance(entries, dict) and "people" in entries:
                    entries = entries["people"]
                if not isinstance(entries, list):
                    raise DetectionFileError(f"{self.path}: value for image {key!r} must be a list of detections")
                self._add(key, self._detections(entries, key))
        else:
            raise DetectionFileError(f"{self.path}: not an accepted detections layout (see hmr.demo.detection_file)")

    def _frame_keys(self, frame: Frame) -> List[str]:
        path = frame.source.path
        keys = [str(path), path.name, path.stem, frame.name]
        if frame.source.kind == "video":
            keys = [frame.name, f"{path.name}:{frame.index}", str(frame.index)]
        return keys

    def lookup(self, frame: Frame) -> Optional[List[Detection]]:
        """The frame's detections (possibly empty), or None when the file does not mention the frame."""
        if self.single is not None:
            return list(self.single)
        if self.folder is not None:
            for name in (f"{frame.name}.json", f"{frame.name}_keypoints.json"):
                candidate = self.folder / name
                if candidate.is_file():
                    return DetectionFile(candidate, self.kind, frame.name).lookup(frame)
            return None
        for key in self._frame_keys(frame):
            if key in self.by_key:
                return list(self.by_key[key])
        return None
