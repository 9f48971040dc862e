"""Synthetic video sequences with ground truth, for measuring tracking and temporal smoothing.

Each person gets a fixed shape and look and moves smoothly between key poses drawn from
:class:`~hmr.data.synthetic.pose_prior.BodyPosePrior`: per joint, consecutive keys are joined by a slerp with a
C2 ease-in/out (``6u⁵ − 15u⁴ + 10u³``); heading, position and the camera move smoothly too. Walkers take one key
per step (walking-archetype keys, mirrored so that the leading leg alternates) while crossing the frame at
constant speed, at different depths and in opposite directions, so that their boxes overlap mid-sequence.

World frame: OpenCV axes (x right, y down, z forward) with the ground plane at ``y = camera height``; the camera
sits near the origin (pitched down a little) and, with ``camera_motion``, pans, tilts and dollies slowly. All
labels are in the camera frame of their frame. Layout of ``out_dir``: ``frames/%06d.jpg``, ``video.mp4``
(mp4v, ``fps``), ``labels.npz`` (one row per person per frame, frame-major; keys in :func:`render_sequence`)
and ``manifest.json`` (the spec).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from hmr.data.synthetic import appearance
from hmr.data.synthetic.generator import settings_differences
from hmr.data.synthetic.pose_prior import BODY_ARCHETYPES, rodrigues, smpl_joint_names
from hmr.data.synthetic.samples import (BBOX_EXPAND, BodySampler, SceneOptions, matrix_to_axis_angle, project,
                                        with_visibility)
from hmr.data.synthetic.scene import UPRIGHT_FACING_CAMERA, extreme_points, intrinsics_from_fov, projected_box
from hmr.data.synthetic.writers import write_jpeg
from hmr.utils.file_errors import naming_path
from hmr.utils.io import save_npz, write_json
from hmr.vis.render import Mesh

OUTPUTS = ("frames", "video.mp4", "labels.npz", "manifest.json")
Y_AXIS, X_AXIS = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])
_MIRROR = np.diag([-1.0, 1.0, 1.0])  # SMPL frame: x is the subject's left
_NECK_HEAD = [smpl_joint_names().index(n) - 1 for n in ("neck", "head")]  # body-pose indices


@dataclass
class SequenceSpec:
    """Everything that defines one sequence (what ``manifest.json`` pins). Sizes in pixels, times in seconds,
    ``pose_weights`` over ``BODY_ARCHETYPES`` for people who do not walk."""

    kind: str = "body"
    people: int = 1
    frames: int = 90
    fps: float = 30.0
    width: int = 640
    height: int = 480
    seed: int = 0
    walk: bool = True
    camera_motion: bool = False
    key_interval_s: float = 1.0  # people who do not walk: about one key pose per interval (walkers: one per step)
    fov_deg: Tuple[float, float] = (50.0, 65.0)
    pose_weights: Tuple[float, ...] = (0.3, 0.15, 0.1, 0.3, 0.15, 0.0)
    shape_std: float = 1.0
    model: str = "open-smpl"
    jpeg_quality: int = 92
    backend: str = "auto"

    def __post_init__(self) -> None:
        self.fov_deg, self.pose_weights = tuple(self.fov_deg), tuple(self.pose_weights)
        checks = [
            (self.kind == "body", f"kind must be 'body' (hand sequences are not implemented), got {self.kind!r}"),
            (1 <= int(self.people) <= 3, f"people must be 1, 2 or 3, got {self.people}"),
            (int(self.frames) >= 2 and self.fps > 0, f"need frames >= 2 and fps > 0, got {self.frames}, {self.fps}"),
            (self.key_interval_s > 0, f"key_interval_s must be > 0, got {self.key_interval_s}"),
            (min(int(self.width), int(self.height)) >= 16, f"image size must be at least 16x16, got "
                                                           f"{self.width}x{self.height}"),
            (len(self.fov_deg) == 2 and 1 <= self.fov_deg[0] <= self.fov_deg[-1] <= 170,
             f"fov_deg must be a range [lo, hi] within [1, 170], got {list(self.fov_deg)}"),
            (len(self.pose_weights) == len(BODY_ARCHETYPES) and min(self.pose_weights) >= 0 < sum(self.pose_weights),
             f"pose_weights must be {len(BODY_ARCHETYPES)} weights >= 0 for {BODY_ARCHETYPES}, got "
             f"{list(self.pose_weights)}"),
            (1 <= int(self.jpeg_quality) <= 100, f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready settings (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


SEQUENCE_PRESETS: Dict[str, SequenceSpec] = {
    "single_walk": SequenceSpec(people=1, frames=90, walk=True, seed=1),
    "single_pan": SequenceSpec(people=1, frames=90, walk=False, camera_motion=True, seed=2),
    "crossing2": SequenceSpec(people=2, frames=120, walk=True, seed=3),
    "crossing3": SequenceSpec(people=3, frames=150, walk=True, seed=4),
    "crossing2_pan": SequenceSpec(people=2, frames=120, walk=True, camera_motion=True, seed=5),
}


def preset(name: str, **overrides: Any) -> SequenceSpec:
    """A copy of ``SEQUENCE_PRESETS[name]`` with fields replaced (ValueError for unknown names or fields)."""
    if name not in SEQUENCE_PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(SEQUENCE_PRESETS)}")
    unknown = set(overrides) - set(SequenceSpec.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown sequence settings {sorted(unknown)}")
    return replace(SEQUENCE_PRESETS[name], **overrides)


# ---------------------------------------------------------------------------------------------- interpolation
def ease(u: np.ndarray) -> np.ndarray:
    """C2 ease-in/out on [0, 1] (zero velocity and acceleration at both ends)."""
    u = np.clip(u, 0.0, 1.0)
    return u ** 3 * (10.0 - 15.0 * u + 6.0 * u ** 2)


def slerp(R0: np.ndarray, R1: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) from ``R0`` towards ``R1`` by fractions ``s`` (...) along the shortest geodesic."""
    shape = R0.shape[:-2]
    r0 = Rotation.from_matrix(R0.reshape(-1, 3, 3))
    step = (r0.inv() * Rotation.from_matrix(R1.reshape(-1, 3, 3))).as_rotvec()
    step = step * np.broadcast_to(s, shape).reshape(-1, 1)
    return (r0 * Rotation.from_rotvec(step)).as_matrix().reshape(shape + (3, 3))


def interpolate_keys(key_times: np.ndarray, keys: np.ndarray, t: np.ndarray, rotations: bool = False) -> np.ndarray:
    """Values at times ``t`` (F,) of keys (K, ...) at increasing ``key_times`` (K,), eased between neighbours;
    ``rotations``: keys are (K, J, 3, 3) rotation matrices joined per joint by :func:`slerp`."""
    k = np.clip(np.searchsorted(key_times, t, side="right") - 1, 0, len(key_times) - 2)
    s = ease((t - key_times[k]) / (key_times[k + 1] - key_times[k]))
    a, b = keys[k], keys[k + 1]
    if rotations:
        return slerp(a, b, np.broadcast_to(s[:, None], a.shape[:2]))
    return a + (b - a) * s.reshape((-1,) + (1,) * (a.ndim - 1))


# ---------------------------------------------------------------------------------------------- motion planning
@lru_cache(maxsize=2)
def _sampler(model: str, backend: str) -> BodySampler:
    from hmr import body

    return BodySampler(body.load(model), SceneOptions(backend=backend))


def mirror_body_pose(pose: np.ndarray) -> np.ndarray:
    """Left-right mirror image of SMPL body poses (N, 23, 3, 3): swap sides, ``R -> M R M``."""
    names = smpl_joint_names()
    swap = {"l_": "r_", "r_": "l_"}
    perm = [names.index(swap.get(n[:2], n[:2]) + n[2:]) for n in names]
    full = np.concatenate([np.broadcast_to(np.eye(3), (len(pose), 1, 3, 3)), pose], axis=1)
    return (_MIRROR @ full[:, perm] @ _MIRROR)[:, 1:]


@torch.no_grad()
def _walking_keys(sampler: BodySampler, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` walking-archetype poses whose leading leg alternates (best of 4 candidates, mirrored if needed)."""
    weights = [1.0 if name == "walking" else 0.0 for name in BODY_ARCHETYPES]
    cand = sampler.prior.sample(rng, 4 * count, weights)[0]
    full = np.concatenate([np.broadcast_to(np.eye(3), (len(cand), 1, 3, 3)), cand], axis=1)
    joints = sampler.model(full_pose=torch.from_numpy(full).float()).joints.double().numpy()
    lead = (joints[:, 7, 2] - joints[:, 8, 2]).reshape(count, 4)  # left ankle ahead of the right (model +z)
    best = np.abs(lead).argmax(1)
    keys = cand.reshape(count, 4, 23, 3, 3)[np.arange(count), best]
    want = np.where(np.arange(count) % 2 == 0, 1.0, -1.0) * rng.choice([-1.0, 1.0])
    flip = np.sign(lead[np.arange(count), best]) != want
    keys[flip] = mirror_body_pose(keys[flip])
    return keys


def _plan_person(spec: SequenceSpec, sampler: BodySampler, rng: np.random.Generator, index: int,
                 K: np.ndarray, t: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-frame body pose (F, 23, 3, 3), heading (F,) degrees and world pelvis x/z (F, 2) of person ``index``."""
    duration, (f, cx, w) = len(t) / spec.fps, (K[0, 0], K[0, 2], spec.width)
    if spec.walk:  # cross the image centre mid-sequence; odd people walk the other way, each at its own depth
        depth = (rng.uniform(4.0, 6.0) if spec.people == 1 else 4.0 + 1.4 * index + rng.uniform(0.0, 0.5))
        direction = (1.0 if index % 2 == 0 else -1.0) * (1.0 if spec.seed % 2 == 0 else -1.0)
        speed = float(np.clip(0.8 * depth * w / f / duration, 0.7, 1.6) * rng.uniform(0.9, 1.1))
        slant = np.deg2rad(rng.uniform(-12.0, 12.0))
        velocity = speed * np.array([direction * np.cos(slant), np.sin(slant)])
        # staggered centre crossings (0.4/0.6 T for two people, 0.3/0.5/0.7 T for three): with similar image
        # speeds each pair walking towards each other meets mid-way, and same-direction walkers stay apart
        t_cross = duration * (0.5 + 0.2 * (index - (spec.people - 1) / 2) + rng.uniform(-0.03, 0.03))
        u_cross = cx + rng.uniform(-0.03, 0.03) * w
        step = float(np.clip(0.7 / speed, 0.45, 0.7))
        key_t = np.arange(-rng.uniform(0.0, step), duration + 2 * step, step)
        poses = _walking_keys(sampler, rng, len(key_t))
        heading = np.degrees(np.arctan2(velocity[0], -velocity[1])) + rng.normal(0.0, 3.0, len(key_t))
        start = np.array([(u_cross - cx) / f * depth, depth]) - velocity * t_cross
        xz = start + velocity * t[:, None]
    else:  # stand side by side, turning and wandering a little between key poses
        interval = spec.key_interval_s * rng.uniform(0.8, 1.2)
        key_t = np.arange(-rng.uniform(0.0, interval), duration + 2 * interval, interval)
        poses = sampler.prior.sample(rng, len(key_t), spec.pose_weights)[0]
        heading = rng.uniform(-60.0, 60.0) + rng.normal(0.0, 20.0, len(key_t))
        depth = rng.uniform(3.5, 5.0) + 0.8 * index
        u = w * (index + 1) / (spec.people + 1) + rng.uniform(-0.05, 0.05) * w
        wander = np.array([(u - cx) / f * depth, depth]) + rng.normal(0.0, 0.08, (len(key_t), 2))
        xz = interpolate_keys(key_t, wander, t)
    body_pose = interpolate_keys(key_t, poses, t, rotations=True)
    if spec.walk:  # the neck and head turn at half the step rate (not with every step)
        body_pose[:, _NECK_HEAD] = interpolate_keys(key_t[::2], poses[::2][:, _NECK_HEAD], t, rotations=True)
    return {"body_pose": body_pose, "heading": interpolate_keys(key_t, heading, t), "xz": xz}


def _camera_path(spec: SequenceSpec, rng: np.random.Generator, t: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-frame world-to-camera rotations (F, 3, 3), camera centres (F, 3), yaw and pitch (F,) degrees."""
    pitch = np.full(len(t), -rng.uniform(3.0, 8.0))  # looking down a little
    yaw, centre = np.zeros(len(t)), np.zeros((len(t), 3))
    if spec.camera_motion:  # slow pan, tilt and sideways dolly
        period, phase = rng.uniform(4.0, 8.0), rng.uniform(0.0, 2 * np.pi, 3)
        yaw = rng.uniform(6.0, 12.0) * np.sin(2 * np.pi * t / period + phase[0])
        pitch = pitch + 1.5 * np.sin(2 * np.pi * t / (1.3 * period) + phase[1])
        centre[:, 0] = 0.25 * np.sin(2 * np.pi * t / (1.7 * period) + phase[2])
    cam_to_world = rodrigues(Y_AXIS, yaw) @ rodrigues(X_AXIS, pitch)
    return {"R": np.transpose(cam_to_world, (0, 2, 1)), "C": centre, "yaw": yaw, "pitch": pitch}


@torch.no_grad()
def _pose_person(sampler: BodySampler, plan: Dict[str, np.ndarray], betas: np.ndarray, cam: Dict[str, np.ndarray],
                 ground: float, fps: float) -> Dict[str, np.ndarray]:
    """Camera-frame rotations (F, 24, 3, 3), transl, vertices, joints and keypoints of one planned person."""
    n = len(plan["xz"])
    world_orient = UPRIGHT_FACING_CAMERA @ rodrigues(Y_AXIS, plan["heading"])
    rotmat = np.concatenate([world_orient[:, None], plan["body_pose"]], axis=1)
    out = sampler.model(full_pose=torch.from_numpy(rotmat).float(),
                        betas=torch.from_numpy(np.repeat(betas[None], n, 0)).float())
    verts, joints = out.vertices.double().numpy(), out.joints.double().numpy()
    root = joints[:, 0].copy()  # the pelvis: the point the global rotation turns about (pose independent)
    verts, joints = verts - root[:, None], joints - root[:, None]
    pelvis_y = gaussian_filter1d(ground - verts[..., 1].max(1), max(1.0, 0.1 * fps), mode="nearest")  # feet down
    pelvis = np.einsum("fij,fj->fi", cam["R"], np.stack([plan["xz"][:, 0], pelvis_y, plan["xz"][:, 1]], 1) - cam["C"])
    verts = np.einsum("fij,fvj->fvi", cam["R"], verts) + pelvis[:, None]
    joints = np.einsum("fij,fvj->fvi", cam["R"], joints) + pelvis[:, None]
    rotmat[:, 0] = cam["R"] @ world_orient
    vt, jt = torch.from_numpy(verts).float(), torch.from_numpy(joints).float()
    return {"rotmat": rotmat, "transl": pelvis - root, "verts": verts, "pelvis": pelvis,
            "spin": sampler.model.keypoints(vt, jt, "spin24").double().numpy(),
            "openpose": sampler.model.keypoints(vt, jt, "openpose25").double().numpy()}


# ---------------------------------------------------------------------------------------------- rendering
def _visible_fraction(sampler: BodySampler, spec: SequenceSpec, mesh: Mesh, box: np.ndarray, K: np.ndarray,
                      visible: int, alone_needed: bool) -> float:
    """Visible pixels / pixels of the whole silhouette, the latter rendered alone, zoomed out to fit if cut."""
    if visible == 0 or not alone_needed:
        return float(visible > 0)
    w, h = spec.width, spec.height
    size = np.maximum(box[2:] - box[:2], 1.0)
    s = float(min(1.0, 0.9 * w / size[0], 0.9 * h / size[1]))
    K2 = K.copy()
    K2[:2, :2] *= s
    K2[:2, 2] = np.array([w, h]) / 2.0 - s * ((box[:2] + box[2:]) / 2 - K[:2, 2])
    full = (sampler.renderer(h, w).render_meshes([mesh], K2).labels == 0).sum() / s ** 2
    return float(min(1.0, visible / max(full, 1.0)))


def _pixel_box(mask: np.ndarray) -> np.ndarray:
    """[x, y, w, h] covering the mask's pixels (pixel centres at integers, so x = first column - 0.5)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.zeros(4)
    return np.array([xs.min() - 0.5, ys.min() - 0.5, xs.max() - xs.min() + 1.0, ys.max() - ys.min() + 1.0])


def _row(sampler: BodySampler, spec: SequenceSpec, p: Dict[str, Any], fi: int, i: int, K: np.ndarray,
         boxes: List[np.ndarray], mesh: Mesh, labels: np.ndarray) -> Dict[str, Any]:
    """The labels of person ``i`` in frame ``fi`` (keys in :func:`render_sequence`)."""
    w, h, box, spin, op = spec.width, spec.height, boxes[i], p["spin"][fi], p["openpose"][fi]
    mask = labels == i
    inside = box[0] >= -0.5 and box[1] >= -0.5 and box[2] <= w - 0.5 and box[3] <= h - 0.5
    touching = any(j != i and (box[:2] < b[2:]).all() and (b[:2] < box[2:]).all() for j, b in enumerate(boxes))
    part = with_visibility(project(spin, K), spin[:, 2], h, w)
    px = np.round(part[:, :2]).astype(int).clip(0, [w - 1, h - 1])
    owner = labels[px[:, 1], px[:, 0]]
    lo, hi = np.clip(box[:2], 0, [w - 1, h - 1]), np.clip(box[2:], 0, [w - 1, h - 1])  # as samples.py
    full = np.clip(box, -0.5, [w - 0.5, h - 0.5, w - 0.5, h - 0.5])
    return {
        "imgname": f"frames/{fi:06d}.jpg", "center": (lo + hi) / 2,
        "scale": BBOX_EXPAND * max(float((hi - lo).max()), 1.0) / 200.0, "part": part,
        "S": np.concatenate([spin - p["pelvis"][fi], np.ones((24, 1))], axis=1),
        "openpose": with_visibility(project(op, K), op[:, 2], h, w),
        "pose": matrix_to_axis_angle(p["rotmat"][fi]).reshape(-1), "rotmat": p["rotmat"][fi], "shape": p["betas"],
        "has_smpl": 1.0, "transl": p["transl"][fi], "focal_l": float(K[0, 0]), "K": K, "img_size": np.array([h, w]),
        "gender": "n", "frame_index": fi, "person_id": i, "timestamp": fi / spec.fps,
        "visible_fraction": _visible_fraction(sampler, spec, mesh, box, K, int(mask.sum()), not inside or touching),
        "bbox_xywh": _pixel_box(mask), "bbox_full_xywh": np.concatenate([full[:2], full[2:] - full[:2]]),
        "part_occluded": ((owner >= 0) & (owner != i) & (part[:, 2] > 0)).astype(np.float64),
    }


def _prepare(out_dir: Path, spec: SequenceSpec, overwrite: bool) -> None:
    manifest = out_dir / "manifest.json"
    if manifest.exists() and not overwrite:
        try:
            changes = settings_differences(json.loads(manifest.read_text()), spec.to_dict())
        except ValueError as exc:
            raise ValueError(f"{manifest} is not valid JSON ({exc}); rerun with overwrite (--overwrite)") from exc
        if changes:
            raise ValueError(f"{out_dir} holds a sequence made with different settings ({'; '.join(changes)}); "
                             "rerun with overwrite (--overwrite, replaces it) or choose another folder")
    for name in OUTPUTS:  # only our own outputs: never the whole folder
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    write_json(manifest, spec.to_dict())


def render_sequence(spec: SequenceSpec, out_dir: Union[str, Path], overwrite: bool = False,
                    progress: bool = False) -> Dict[str, Any]:
    """Render ``spec`` into ``out_dir`` (layout in the module docstring); returns a summary (rows, seconds, ...).

    ``labels.npz`` rows (N = frames × people, frame-major), camera frame of the row's frame (OpenCV axes, metres),
    pixels with integer values at pixel centres: ``imgname`` (``frames/%06d.jpg``), ``center`` (2) and ``scale``
    (1.2 × side of the projected-mesh box clipped to the image / 200), ``part`` (24, 3) SPIN-24 [u, v, 1 if in
    front and inside the image], ``S`` (24, 4) SPIN-24 3D minus the pelvis joint + conf 1, ``openpose`` (25, 3),
    ``pose`` (72) axis-angle / ``rotmat`` (24, 3, 3) (joint 0 = global orientation in the camera frame),
    ``shape`` (10), ``has_smpl``, ``transl`` (3; model(rotmat, shape) + transl = camera-frame mesh), ``focal_l``,
    ``K``, ``img_size`` (h, w), ``gender`` ('n'); sequence keys: ``frame_index``, ``person_id`` (0..people-1),
    ``timestamp`` (s), ``visible_fraction`` (visible silhouette pixels / whole silhouette, occlusion by others
    and the image border), ``bbox_xywh`` (tight box of the visible silhouette, zeros when unseen),
    ``bbox_full_xywh`` (box of the projected mesh clipped to [-0.5, w-0.5] x [-0.5, h-0.5]), ``part_occluded``
    (24; 1 where another person covers the keypoint's pixel).
    """
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    _prepare(out_dir, spec, overwrite)
    sampler = _sampler(spec.model, spec.backend)
    seeds = np.random.SeedSequence(int(spec.seed)).spawn(spec.people + 1)
    rng, person_rngs = np.random.default_rng(seeds[0]), [np.random.default_rng(s) for s in seeds[1:]]
    w, h, n, F = int(spec.width), int(spec.height), int(spec.people), int(spec.frames)
    K = intrinsics_from_fov(w, h, float(rng.uniform(*spec.fov_deg)))
    t = np.arange(F) / spec.fps
    cam = _camera_path(spec, rng, t)
    ground = float(rng.uniform(1.2, 1.7))  # camera height above the ground
    mx = my = 0  # a moving camera sees a window of a larger background that shifts with pan and tilt
    if spec.camera_motion:
        mx = int(math.ceil(K[0, 0] * np.tan(np.deg2rad(np.abs(cam["yaw"]).max())))) + 2
        my = int(math.ceil(K[1, 1] * np.tan(np.deg2rad(np.ptp(cam["pitch"]))))) + 2
    canvas = appearance.random_background(rng, h + 2 * my, w + 2 * mx)
    light0 = appearance.random_light(rng)
    light_world = cam["R"][0].T @ light0.unit_direction()

    people = []
    for i, prng in enumerate(person_rngs):
        betas = np.clip(prng.normal(0.0, spec.shape_std, sampler.model.num_betas), -3, 3)
        look = (appearance.body_colors(prng, sampler.regions), float(prng.uniform(0.0, 0.3)))
        posed = _pose_person(sampler, _plan_person(spec, sampler, prng, i, K, t), betas, cam, ground, spec.fps)
        people.append(dict(posed, betas=betas, look=look))

    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    tmp_video = out_dir / ".video.partial.mp4"
    video = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), float(spec.fps), (w, h))
    if not video.isOpened():
        raise RuntimeError(f"cannot open a video writer (mp4v) for {tmp_video}")
    rows: Dict[str, List[Any]] = {}
    renderer = sampler.renderer(h, w)
    try:
        for fi in tqdm(range(F), desc=f"sequence {out_dir.name}", unit="frame", disable=not progress):
            meshes = [Mesh(p["verts"][fi].astype(np.float32), sampler.faces, p["look"][0], specular=p["look"][1])
                      for p in people]
            boxes = [projected_box(extreme_points(p["verts"][fi]), K) for p in people]
            bg = canvas if not spec.camera_motion else cv2.getRectSubPix(canvas, (w, h), (
                mx + K[0, 0] * np.tan(np.deg2rad(cam["yaw"][fi])) + (w - 1) / 2,
                my - K[1, 1] * np.tan(np.deg2rad(cam["pitch"][fi] - cam["pitch"][0])) + (h - 1) / 2))
            light = replace(light0, direction=tuple(cam["R"][fi] @ light_world))
            result = renderer.render_meshes(meshes, K, np.ascontiguousarray(bg), light)
            name = f"frames/{fi:06d}.jpg"
            with naming_path(out_dir / name):
                write_jpeg(out_dir / name, result.color, spec.jpeg_quality)
            video.write(np.ascontiguousarray(result.color[..., ::-1]))
            for i, p in enumerate(people):
                for key, value in _row(sampler, spec, p, fi, i, K, boxes, meshes[i], result.labels).items():
                    rows.setdefault(key, []).append(value)
    except BaseException:
        video.release()
        tmp_video.unlink(missing_ok=True)
        raise
    video.release()
    os.replace(tmp_video, out_dir / "video.mp4")
    arrays = {k: np.stack([np.asarray(v) for v in vals]) for k, vals in rows.items()}
    arrays["imgname"], arrays["gender"] = arrays["imgname"].astype("<U32"), arrays["gender"].astype("<U1")
    save_npz(out_dir / "labels.npz", **arrays)
    return {"out_dir": str(out_dir), "frames": F, "people": n, "rows": F * n, "size": [w, h], "fps": spec.fps,
            "backend": renderer.backend, "seconds": round(time.perf_counter() - t0, 2),
            "files": ["frames/", "video.mp4", "labels.npz", "manifest.json"]}

