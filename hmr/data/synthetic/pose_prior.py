"""Hand-written pose priors for synthetic bodies (SMPL-24 tree) and hands (MANO-16 tree).

Each joint rotation is built from three anatomical angles about axes derived from the model's *rest* skeleton,
so the same prior works for the open models (A-pose rest) and the official files (T-pose rest):
``R = R(d × f, flex) · R(d × o, abduct) · R(d, twist)`` with ``d`` the rest bone direction (joint → child),
``f`` the direction the bone moves when flexing and ``o`` the abduction direction (both made perpendicular to d).
Axis-angle rotations about unit axes use Rodrigues' formula. Angles are in degrees, limits are per joint.

Body poses are drawn from a mixture of archetypes (standing, walking, sitting, reaching, crouching, random) that
couple left/right limbs (walking phase, one or two reaching arms) and spread a total spine bend over the three
spine joints. Hand poses couple the finger joints (distal flexion follows the middle joint, a shared grip
variable curls all fingers) over archetypes (flat, relaxed, fist, point, pinch, grasp, random).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

BODY_ARCHETYPES = ("standing", "walking", "sitting", "reaching", "crouching", "random")
BODY_ARCHETYPE_WEIGHTS = (0.2, 0.2, 0.15, 0.15, 0.1, 0.2)
HAND_ARCHETYPES = ("flat", "relaxed", "fist", "point", "pinch", "grasp", "random")
HAND_ARCHETYPE_WEIGHTS = (0.1, 0.2, 0.15, 0.1, 0.1, 0.15, 0.2)

FORWARD, UP, LEFT = np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])


def rodrigues(axis: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about unit axes (..., 3) by angles (...) in degrees."""
    a = np.deg2rad(degrees)[..., None, None]
    k = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    kx = np.zeros(k.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2] = -k[..., 2], k[..., 1]
    kx[..., 1, 0], kx[..., 1, 2] = k[..., 2], -k[..., 0]
    kx[..., 2, 0], kx[..., 2, 1] = -k[..., 1], k[..., 0]
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * (kx @ kx)


def _perp_unit(v: np.ndarray, d: np.ndarray) -> np.ndarray:
    p = v - (v @ d) * d
    n = np.linalg.norm(p)
    if n < 1e-6:
        raise ValueError("anatomical direction is parallel to the bone; cannot build the joint axes")
    return p / n


@dataclass(frozen=True)
class JointAxes:
    """Per-joint unit axes (J, 3, 3): rows = flexion axis, abduction axis, twist axis (the bone)."""

    axes: np.ndarray

    def compose(self, angles: np.ndarray) -> np.ndarray:
        """(N, J, 3) degrees [flex, abduct, twist] -> (N, J, 3, 3) local rotations."""
        n, j = angles.shape[:2]
        ax = np.broadcast_to(self.axes, (n, j, 3, 3))
        return (rodrigues(ax[:, :, 0], angles[..., 0]) @ rodrigues(ax[:, :, 1], angles[..., 1])
                @ rodrigues(ax[:, :, 2], angles[..., 2]))


def build_axes(rest_joints: np.ndarray, bones: Sequence[np.ndarray], flex_dirs: Sequence[np.ndarray],
               out_dirs: Sequence[np.ndarray]) -> JointAxes:
    """Axes from rest bone directions and the anatomical flexion/abduction directions."""
    rows = []
    for d, f, o in zip(bones, flex_dirs, out_dirs):
        d = d / np.linalg.norm(d)
        rows.append(np.stack([np.cross(d, _perp_unit(f, d)), np.cross(d, _perp_unit(o, d)), d]))
    return JointAxes(np.stack(rows))


# ---------------------------------------------------------------------------------------------- body
# SMPL-24: child used for the bone direction (None: a fixed direction below), flexion and abduction directions
# for the LEFT side (x is the subject's left; right-side joints mirror x), and limits [lo, hi] per angle.
_B = {
    # name: (child, flex dir, out dir, flex limits, abduct limits, twist limits)
    "hip": ("knee", FORWARD, LEFT, (-25, 125), (-20, 50), (-35, 35)),
    "knee": ("ankle", -FORWARD, LEFT, (0, 145), (-3, 3), (-10, 10)),
    "ankle": ("foot", UP, LEFT, (-40, 25), (-15, 15), (-10, 10)),
    "foot": (FORWARD, UP, LEFT, (-10, 30), (0, 0), (0, 0)),
    "spine1": ("spine2", FORWARD, LEFT, (-15, 35), (-15, 15), (-20, 20)),
    "spine2": ("spine3", FORWARD, LEFT, (-15, 35), (-15, 15), (-20, 20)),
    "spine3": ("neck", FORWARD, LEFT, (-15, 35), (-15, 15), (-20, 20)),
    "neck": ("head", FORWARD, LEFT, (-35, 45), (-25, 25), (-50, 50)),
    "head": (UP, FORWARD, LEFT, (-25, 30), (-15, 15), (-25, 25)),
    "collar": ("shoulder", FORWARD, UP, (-10, 20), (-10, 25), (-10, 10)),
    # shoulder abduction limits are ABSOLUTE arm elevation from hanging down (converted with the rest pose)
    "shoulder": ("elbow", FORWARD, UP, (-50, 160), (5, 170), (-60, 60)),
    "elbow": ("wrist", FORWARD, UP, (0, 150), (-5, 5), (-45, 45)),
    "wrist": ("hand", FORWARD, UP, (-60, 60), (-25, 25), (-30, 30)),
    "hand": (None, FORWARD, UP, (-10, 60), (-5, 5), (-5, 5)),
}
_SMPL_NAMES = ("pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
               "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
               "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand")
_IDX = {n: i for i, n in enumerate(_SMPL_NAMES)}
_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)


def _kind(name: str) -> Tuple[str, str]:
    """('l'|'r'|'', joint kind) for an SMPL joint name."""
    return (name[0], name[2:]) if name[:2] in ("l_", "r_") else ("", name)


class BodyPosePrior:
    """Samples SMPL-tree body poses (N, 23, 3, 3) from archetypes; built from the model's rest joints (24, 3).

    Archetypes and limits speak in *absolute* anatomical angles: shoulder abduction is the arm's elevation from
    hanging straight down, elbow/knee flexion the bend between the two bones. ``offset`` (23, 3) holds the rest
    pose's values of those angles (an A-pose has raised arms and slightly bent elbows), subtracted before the
    rotations are built. Elbows and knees are hinges: their flexion axis is taken from the parent bone.
    """

    HINGES = ("elbow", "knee")

    def __init__(self, rest_joints: np.ndarray) -> None:
        rest_joints = np.asarray(rest_joints, np.float64)
        if rest_joints.shape != (24, 3):
            raise ValueError(f"BodyPosePrior needs the 24 SMPL rest joints (24, 3), got {rest_joints.shape}")
        if rest_joints[_IDX["l_hip"], 0] <= rest_joints[_IDX["r_hip"], 0]:
            raise ValueError("rest joints must be in the SMPL frame (x = subject's left, y up, z forward)")
        bones, flex, out, lo, hi = [], [], [], [], []
        offset = np.zeros((23, 3))
        hinge_axes = {}
        for j, name in enumerate(_SMPL_NAMES[1:], start=1):
            side, kind = _kind(name)
            child, f, o, lf, la, lt = _B[kind]
            mirror = np.array([-1.0, 1.0, 1.0]) if side == "r" else np.ones(3)
            if child is None:  # continue the parent's bone
                d = rest_joints[j] - rest_joints[_IDX[f"{side}_wrist"]]
            elif isinstance(child, str):
                d = rest_joints[_IDX[f"{side}_{child}" if side else child]] - rest_joints[j]
            else:
                d = child * mirror
            bones.append(d)
            flex.append(f * mirror)
            out.append(o * mirror)
            if kind == "shoulder":  # rest elevation of the arm from hanging down
                offset[j - 1, 1] = np.degrees(np.arccos(np.clip(-d @ UP / np.linalg.norm(d), -1, 1)))
            if kind in self.HINGES:  # hinge axis from the parent bone; rest bend measured about it
                u = rest_joints[j] - rest_joints[_IDX[_SMPL_NAMES[_PARENTS[j]]]]
                u = u / np.linalg.norm(u)
                axis = np.cross(u, _perp_unit(f * mirror, u))
                hinge_axes[j - 1] = axis
                dn = d / np.linalg.norm(d)
                offset[j - 1, 0] = np.degrees(np.arctan2(np.cross(u, dn) @ axis, u @ dn))
            lo.append([lf[0], la[0], lt[0]])
            hi.append([lf[1], la[1], lt[1]])
        axes = build_axes(rest_joints, bones, flex, out).axes.copy()
        for k, axis in hinge_axes.items():
            axes[k, 0] = axis
        self.axes = JointAxes(axes)
        self.offset = offset
        self.lower, self.upper = np.array(lo, np.float64), np.array(hi, np.float64)  # absolute limits (23, 3)

    @property
    def rest_elevation(self) -> Dict[str, float]:
        """Rest arm elevation (degrees from hanging down) per side."""
        return {s: float(self.offset[self._j(f"{s}_shoulder"), 1]) for s in "lr"}

    # angles are (N, 23, 3) arrays indexed by joint-1; helpers address them by name
    @staticmethod
    def _j(name: str) -> int:
        return _IDX[name] - 1

    def sample(self, rng: np.random.Generator, n: int,
               weights: Sequence[float] = BODY_ARCHETYPE_WEIGHTS) -> Tuple[np.ndarray, np.ndarray]:
        """-> (body pose rotations (n, 23, 3, 3), archetype index (n,) into BODY_ARCHETYPES)."""
        probs = np.asarray(weights, np.float64)
        kinds = rng.choice(len(BODY_ARCHETYPES), size=n, p=probs / probs.sum())
        angles = np.zeros((n, 23, 3))
        for i, k in enumerate(kinds):
            angles[i] = self._archetype(rng, BODY_ARCHETYPES[k])
        return self.rotations(angles), kinds

    def rotations(self, absolute_angles: np.ndarray) -> np.ndarray:
        """(N, 23, 3) absolute [flex, abduct, twist] degrees -> clipped to the limits -> (N, 23, 3, 3)."""
        angles = np.clip(absolute_angles, self.lower, self.upper)
        return self.axes.compose(angles - self.offset)

    def _archetype(self, rng: np.random.Generator, kind: str) -> np.ndarray:
        a = rng.normal(0.0, 4.0, (23, 3))  # small noise on every angle
        j = self._j
        if kind == "random":
            return rng.uniform(self.lower, self.upper)
        elev = {s: rng.normal(18, 8) for s in "lr"}  # arms hanging, absolute elevation
        spine_bend, spine_side, spine_twist = rng.normal(4, 5), rng.normal(0, 4), rng.normal(0, 5)
        if kind == "standing":
            for s in "lr":
                a[j(f"{s}_hip"), 0] += rng.normal(0, 6)
                a[j(f"{s}_knee"), 0] += abs(rng.normal(0, 8))
                a[j(f"{s}_shoulder"), 0] += rng.normal(0, 12)
                a[j(f"{s}_elbow"), 0] += rng.uniform(5, 50)
            shift = rng.normal(0, 5)
            a[j("l_hip"), 1] += shift
            a[j("r_hip"), 1] -= shift
        elif kind == "walking":
            phase, stride = rng.uniform(0, 2 * np.pi), rng.uniform(15, 32)
            for s, sign in (("l", 1.0), ("r", -1.0)):
                swing = np.sin(phase) * sign
                a[j(f"{s}_hip"), 0] += stride * swing
                a[j(f"{s}_knee"), 0] += 5 + 55 * max(0.0, np.cos(phase) * sign)  # bent while the leg swings forward
                a[j(f"{s}_ankle"), 0] += 10 * swing
                a[j(f"{s}_shoulder"), 0] -= 0.8 * stride * swing  # arms swing against the legs
                a[j(f"{s}_elbow"), 0] += rng.uniform(10, 40)
            spine_twist += 0.2 * stride * np.sin(phase)
        elif kind == "sitting":
            for s in "lr":
                a[j(f"{s}_hip"), 0] += rng.normal(90, 12)
                a[j(f"{s}_hip"), 1] += rng.uniform(0, 25)
                a[j(f"{s}_knee"), 0] += rng.normal(90, 18)
                a[j(f"{s}_shoulder"), 0] += rng.uniform(0, 50)
                a[j(f"{s}_elbow"), 0] += rng.uniform(30, 100)
            spine_bend += rng.normal(5, 8)
        elif kind == "reaching":
            sides = ["l", "r", "lr"][rng.integers(3)]
            for s in sides:
                a[j(f"{s}_shoulder"), 0] += rng.uniform(30, 160)
                elev[s] = rng.uniform(20, 160)
                a[j(f"{s}_elbow"), 0] += rng.uniform(0, 40)
            if len(sides) == 1:
                sign = 1.0 if sides == "l" else -1.0
                spine_twist += sign * rng.normal(15, 8)
                spine_side += -sign * rng.normal(8, 5)
            lunge = rng.uniform(0, 40) if rng.random() < 0.4 else 0.0
            front = "l" if rng.random() < 0.5 else "r"
            a[j(f"{front}_hip"), 0] += lunge
            a[j(f"{front}_knee"), 0] += lunge
        elif kind == "crouching":
            for s in "lr":
                a[j(f"{s}_hip"), 0] += rng.uniform(90, 125)
                a[j(f"{s}_hip"), 1] += rng.uniform(0, 30)
                a[j(f"{s}_knee"), 0] += rng.uniform(100, 145)
                a[j(f"{s}_ankle"), 0] += rng.uniform(10, 25)
                a[j(f"{s}_shoulder"), 0] += rng.uniform(20, 80)
                a[j(f"{s}_elbow"), 0] += rng.uniform(20, 90)
            spine_bend += rng.uniform(10, 40)
        else:
            raise ValueError(f"unknown body archetype {kind!r}; known {BODY_ARCHETYPES}")
        # one bend/side-bend/twist spread over the three spine joints (spine correlation)
        for name, share in (("spine1", 0.4), ("spine2", 0.3), ("spine3", 0.3)):
            a[j(name)] += share * np.array([spine_bend, spine_side, spine_twist])
        a[j("neck"), 0] += -0.3 * spine_bend + rng.normal(0, 10)  # keep looking ahead
        a[j("neck"), 2] += rng.normal(0, 15)
        for s in "lr":
            a[j(f"{s}_shoulder"), 1] += elev[s]
        return a


# ---------------------------------------------------------------------------------------------- hand
_FINGERS = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9), "ring": (10, 11, 12), "thumb": (13, 14, 15)}
# limits per chain position: (flex, abduct (spread), twist)
_FINGER_LIMITS = [((-15, 90), (-20, 20), (-10, 10)), ((0, 110), (-4, 4), (-5, 5)), ((-5, 80), (-3, 3), (-5, 5))]
_THUMB_LIMITS = [((-20, 60), (-30, 35), (-25, 25)), ((-10, 60), (-10, 10), (-10, 10)), ((-10, 80), (-5, 5), (-5, 5))]


def palm_normal(rest_joints: np.ndarray, right: bool = True) -> np.ndarray:
    """Unit normal pointing out of the palm, from MANO-16 rest joints (index, middle, pinky bases, wrist)."""
    along = rest_joints[4] - rest_joints[0]  # wrist -> middle base
    across = rest_joints[1] - rest_joints[7]  # pinky base -> index base (towards the thumb)
    n = np.cross(across, along) if right else np.cross(along, across)  # right hand: thumb-side × fingers = palm
    return n / np.linalg.norm(n)


class HandPosePrior:
    """Samples MANO-16 finger poses (N, 15, 3, 3) for a right hand, from the model's rest joints (16, 3) and the
    rest positions of the five fingertips (thumb, index, middle, ring, pinky) used for the last bones."""

    def __init__(self, rest_joints: np.ndarray, fingertips: np.ndarray, right: bool = True) -> None:
        rest_joints = np.asarray(rest_joints, np.float64)
        if rest_joints.shape != (16, 3) or np.asarray(fingertips).shape != (5, 3):
            raise ValueError(f"HandPosePrior needs MANO-16 rest joints (16, 3) and fingertips (5, 3), "
                             f"got {rest_joints.shape} and {np.asarray(fingertips).shape}")
        tip_of = dict(zip(("thumb", "index", "middle", "ring", "pinky"), np.asarray(fingertips, np.float64)))
        n = palm_normal(rest_joints, right)
        bones, flex, out, lo, hi = [], [], [], [], []
        for finger, chain in _FINGERS.items():
            limits = _THUMB_LIMITS if finger == "thumb" else _FINGER_LIMITS
            for pos, j in enumerate(chain):
                child = rest_joints[chain[pos + 1]] if pos < 2 else tip_of[finger]
                d = child - rest_joints[j]
                spread = np.cross(n, d)  # in the palm plane, perpendicular to the finger
                bones.append(d)
                flex.append(n)
                out.append(spread)
                lo.append([lim[0] for lim in limits[pos]])
                hi.append([lim[1] for lim in limits[pos]])
        order = [j for chain in _FINGERS.values() for j in chain]
        perm = np.argsort(order)  # back to MANO joint order 1..15
        self.axes = JointAxes(build_axes(rest_joints, bones, flex, out).axes[perm])
        self.lower, self.upper = np.array(lo)[perm], np.array(hi)[perm]

    def sample(self, rng: np.random.Generator, n: int,
               weights: Sequence[float] = HAND_ARCHETYPE_WEIGHTS) -> Tuple[np.ndarray, np.ndarray]:
        """-> (hand pose rotations (n, 15, 3, 3) in MANO joint order 1..15, archetype index (n,))."""
        probs = np.asarray(weights, np.float64)
        kinds = rng.choice(len(HAND_ARCHETYPES), size=n, p=probs / probs.sum())
        angles = np.stack([self._archetype(rng, HAND_ARCHETYPES[k]) for k in kinds]) if n else np.zeros((0, 15, 3))
        angles = np.clip(angles, self.lower, self.upper)
        return self.axes.compose(angles), kinds

    def _archetype(self, rng: np.random.Generator, kind: str) -> np.ndarray:
        if kind == "random":
            a = rng.uniform(self.lower, self.upper)
            for chain in _FINGERS.values():  # distal joint still follows the middle one
                a[chain[2] - 1, 0] = 0.67 * a[chain[1] - 1, 0] + rng.normal(0, 8)
            return a
        curl = {"flat": (0.0, 0.05), "relaxed": (0.25, 0.12), "fist": (0.95, 0.05), "point": (0.9, 0.08),
                "pinch": (0.3, 0.1), "grasp": (0.55, 0.1)}
        if kind not in curl:
            raise ValueError(f"unknown hand archetype {kind!r}; known {HAND_ARCHETYPES}")
        grip = float(np.clip(rng.normal(*curl[kind]), 0, 1))
        a = rng.normal(0.0, 3.0, (15, 3))
        for finger, chain in _FINGERS.items():
            g = float(np.clip(grip + rng.normal(0, 0.08), 0, 1))
            if kind == "point" and finger == "index":
                g = rng.uniform(0, 0.1)
            if kind == "pinch" and finger in ("index", "thumb"):
                g = rng.uniform(0.45, 0.7)
            j1, j2, j3 = (c - 1 for c in chain)
            if finger == "thumb":
                a[j1] += [35 * g, 20 * g + rng.normal(0, 8), rng.normal(0, 8)]
                a[j2, 0] += 45 * g
                a[j3, 0] += 60 * g
            else:
                a[j1] += [80 * g + rng.normal(0, 6), rng.normal(0, 6), 0]
                a[j2, 0] += 100 * g
                a[j3, 0] += 0.67 * a[j2, 0]  # distal flexion coupled to the middle joint
        return a


def angle_statistics(rotations: np.ndarray, names: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Per-joint rotation-angle statistics (degrees) of (N, J, 3, 3) rotations, for the summary JSON."""
    tr = np.clip((np.trace(rotations, axis1=-2, axis2=-1) - 1) / 2, -1, 1)
    ang = np.degrees(np.arccos(tr))
    out: Dict[str, Dict[str, float]] = {}
    for j, name in enumerate(names):
        col = ang[:, j] if len(ang) else np.zeros(1)
        out[name] = {"mean": round(float(col.mean()), 2), "std": round(float(col.std()), 2),
                     "p95": round(float(np.percentile(col, 95)), 2)}
    return out


def smpl_joint_names() -> List[str]:
    """SMPL-24 joint names (the order of the body prior's joints 1..23 after the pelvis)."""
    return list(_SMPL_NAMES)
