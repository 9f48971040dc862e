"""MediaPipe keypoints -> the project's joint sets (:mod:`hmr.body.joint_sets`).

Body (BlazePose-33; left/right are the person's own sides in both): eyes, ears, nose, shoulders, elbows,
wrists, hips, knees, ankles, heels and big toes (BlazePose's ``foot_index``) have direct counterparts. Derived
(``derived`` is True, confidence = the lower of the two sources): neck / thorax = shoulder midpoint, pelvis /
mid-hip = hip midpoint. Masked (no counterpart): head top, H36M spine, jaw and head centre, small toes, and the
SMPL joints inside the body (spine, collars, head, feet, hands). Where they differ: BlazePose's hips are
COCO-style surface hip points, higher and wider than SMPL's / H36M's hip joint centres (inside the pelvis); its
shoulders are the acromion region, not the SMPL shoulder joint; the shoulder-midpoint "neck" sits lower than
LSP's neck (base of the head); use the SMPL-24 map for rough initialisation only.

Hand: MediaPipe's 21 hand landmarks are in FreiHAND-21 order (wrist, then thumb CMC, MCP, IP, tip, then
index, middle, ring, pinky from knuckle to tip), so ``freihand21`` is the identity; ``mano16`` takes the
kinematic joints (the tips dropped).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import numpy as np

from hmr.body.joint_sets import FREIHAND21_FROM_MANO21, get_joint_set
from hmr.keypoints.blazepose import POSE_LANDMARK_NAMES
from hmr.keypoints.hands import HAND_LANDMARK_NAMES

Source = Union[None, str, Tuple[str, str]]  # missing, a landmark name, or the midpoint of two

_DIRECT = {
    "nose": "nose", "l_eye": "left_eye", "r_eye": "right_eye", "l_ear": "left_ear", "r_ear": "right_ear",
    "l_shoulder": "left_shoulder", "r_shoulder": "right_shoulder", "l_elbow": "left_elbow",
    "r_elbow": "right_elbow", "l_wrist": "left_wrist", "r_wrist": "right_wrist", "l_hip": "left_hip",
    "r_hip": "right_hip", "l_knee": "left_knee", "r_knee": "right_knee", "l_ankle": "left_ankle",
    "r_ankle": "right_ankle", "l_heel": "left_heel", "r_heel": "right_heel", "l_big_toe": "left_foot_index",
    "r_big_toe": "right_foot_index",
}
_SHOULDERS = ("left_shoulder", "right_shoulder")
_HIPS = ("left_hip", "right_hip")
_DERIVED = {"neck": _SHOULDERS, "neck_lsp": _SHOULDERS, "thorax": _SHOULDERS, "thorax_mpii": _SHOULDERS,
            "mid_hip": _HIPS, "pelvis": _HIPS, "pelvis_mpii": _HIPS}
BODY_SETS = ("spin24", "openpose25", "coco18", "lsp14", "h36m17", "smpl24")
HAND_SETS = ("freihand21", "mano16")


@dataclass
class MappedKeypoints:
    """Keypoints in a project joint set: ``keypoints`` ``(J, 2)`` pixels (0 where masked), ``confidence``
    ``(J,)`` (0 where masked), ``mask`` ``(J,)`` True where the joint has a value, ``derived`` ``(J,)`` True
    where it is a midpoint of two landmarks."""

    joint_set: str
    keypoints: np.ndarray
    confidence: np.ndarray
    mask: np.ndarray
    derived: np.ndarray


def body_sources(joint_set: str) -> Dict[str, Source]:
    """For each joint of a body joint set, its BlazePose source (see the module docstring)."""
    if joint_set not in BODY_SETS:
        raise KeyError(f"no BlazePose map to {joint_set!r}; body sets: {', '.join(BODY_SETS)}")
    names = get_joint_set(joint_set).names
    if joint_set == "smpl24":  # kinematic joints: only the limb joints correspond (roughly)
        limbs = ("l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle", "l_shoulder", "r_shoulder",
                 "l_elbow", "r_elbow", "l_wrist", "r_wrist")
        return {n: (_DIRECT[n] if n in limbs else _DERIVED.get(n) if n == "pelvis" else None) for n in names}
    return {n: _DIRECT.get(n, _DERIVED.get(n)) for n in names}


def map_body(keypoints: np.ndarray, confidence: np.ndarray, joint_set: str = "openpose25") -> MappedKeypoints:
    """BlazePose-33 ``keypoints`` ``(33, 2)`` and per-landmark ``confidence`` ``(33,)`` (e.g. visibility) ->
    ``joint_set`` (one of :data:`BODY_SETS`)."""
    index = {n: i for i, n in enumerate(POSE_LANDMARK_NAMES)}
    sources = body_sources(joint_set)
    n = len(sources)
    out = MappedKeypoints(joint_set, np.zeros((n, 2)), np.zeros(n), np.zeros(n, bool), np.zeros(n, bool))
    for j, source in enumerate(sources.values()):
        if source is None:
            continue
        picks = [index[source]] if isinstance(source, str) else [index[s] for s in source]
        out.keypoints[j] = np.mean(np.asarray(keypoints, np.float64)[picks], axis=0)
        out.confidence[j] = float(np.min(np.asarray(confidence)[picks]))
        out.mask[j] = True
        out.derived[j] = len(picks) > 1
    return out


def map_hand(keypoints: np.ndarray, confidence: Union[float, np.ndarray] = 1.0,
             joint_set: str = "freihand21") -> MappedKeypoints:
    """MediaPipe hand-21 ``keypoints`` ``(21, 2)`` (and a confidence per point or for the hand) ->
    ``freihand21`` (identity) or ``mano16`` (the 16 kinematic joints)."""
    if joint_set not in HAND_SETS:
        raise KeyError(f"no MediaPipe hand map to {joint_set!r}; hand sets: {', '.join(HAND_SETS)}")
    conf = np.broadcast_to(np.asarray(confidence, np.float64), (len(HAND_LANDMARK_NAMES),))
    picks = list(range(21)) if joint_set == "freihand21" else [FREIHAND21_FROM_MANO21.index(i) for i in range(16)]
    n = len(picks)
    return MappedKeypoints(joint_set, np.asarray(keypoints, np.float64)[picks].copy(), conf[picks].copy(),
                           np.ones(n, bool), np.zeros(n, bool))


def hand_source_names(joint_set: str = "freihand21") -> Tuple[Optional[str], ...]:
    """The MediaPipe landmark name behind each joint of a hand joint set."""
    picks = range(21) if joint_set == "freihand21" else [FREIHAND21_FROM_MANO21.index(i) for i in range(16)]
    return tuple(HAND_LANDMARK_NAMES[i] for i in picks)


def landmark_weights(joint_set: str, num_landmarks: int) -> np.ndarray:
    """``(J, num_landmarks)`` averaging weights from a MediaPipe network's landmarks (BlazePose's 33 named ones
    first, then any auxiliary ones, which get no weight; or the hand's 21) to ``joint_set`` (a body set of
    :data:`BODY_SETS` or a hand set of :data:`HAND_SETS`): ``weights @ landmarks`` gives the joints that have a
    counterpart (the maps of :func:`map_body` / :func:`map_hand`); rows of joints without one are zero."""
    if joint_set in HAND_SETS:
        names, sources = HAND_LANDMARK_NAMES, {n: n for n in hand_source_names(joint_set)}
    else:
        names, sources = POSE_LANDMARK_NAMES, body_sources(joint_set)
    if num_landmarks < len(names):
        raise ValueError(f"{joint_set} needs {len(names)} landmarks, the network gives {num_landmarks}")
    index = {n: i for i, n in enumerate(names)}
    weights = np.zeros((len(sources), num_landmarks))
    for j, source in enumerate(sources.values()):
        picks = [] if source is None else [source] if isinstance(source, str) else list(source)
        for name in picks:
            weights[j, index[name]] = 1.0 / len(picks)
    return weights
