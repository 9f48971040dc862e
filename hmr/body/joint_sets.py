"""Joint sets, kinematic trees, index maps and left/right flip permutations — all in one place.

Every list here is an index map into another set: ``B_FROM_A[i]`` is the index in set A of joint i of set B.
Orders follow the public sources named in ``shared/reference/datasets-and-metrics.md`` (SPIN, FreiHAND).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class JointSet:
    """A named ordered set of joints with an optional kinematic tree and a left/right flip permutation."""

    name: str
    names: Tuple[str, ...]
    flip: Tuple[int, ...]
    parents: Optional[Tuple[int, ...]] = None
    description: str = field(default="", compare=False)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, joint_name: str) -> int:
        """Index of a joint by name (raises KeyError with the known names)."""
        try:
            return self.names.index(joint_name)
        except ValueError:
            raise KeyError(f"{joint_name!r} is not in joint set {self.name}: {self.names}") from None


def _flip_from_names(names: Tuple[str, ...]) -> Tuple[int, ...]:
    """Flip permutation: swap every 'l_*'/'r_*' (or 'left_*'/'right_*') pair, keep the rest."""
    swaps = {"l_": "r_", "r_": "l_", "left_": "right_", "right_": "left_"}
    out = []
    for name in names:
        partner = name
        for prefix, other in swaps.items():
            if name.startswith(prefix):
                partner = other + name[len(prefix):]
                break
        out.append(names.index(partner))
    return tuple(out)


SMPL_24_NAMES = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
    "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand",
)
SMPL_24 = JointSet(
    "smpl24", SMPL_24_NAMES, _flip_from_names(SMPL_24_NAMES),
    parents=(-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21),
    description="SMPL kinematic joints (24)",
)

# Rows of SPIN's J_regressor_h36m (17 x 6890): left leg first, then right leg (differs from mmpose).
H36M_17_NAMES = (
    "pelvis", "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle", "spine", "thorax", "nose",
    "head_top", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)
H36M_17 = JointSet("h36m17", H36M_17_NAMES, _flip_from_names(H36M_17_NAMES),
                   description="Human3.6M 17 joints in SPIN's J_regressor_h36m row order")

LSP_14_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
    "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top",
)
LSP_14 = JointSet("lsp14", LSP_14_NAMES, _flip_from_names(LSP_14_NAMES),
                  description="LSP 14 joints (the 3DPW / H36M evaluation set)")
# SPIN: H36M_TO_J14 (neck = thorax, head = head top).
LSP14_FROM_H36M17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)

# SPIN's 24-joint ground-truth set (the order of 'part' and 'S' in SPIN/CLIFF npz files).
SPIN_24_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
    "l_shoulder", "l_elbow", "l_wrist", "neck_lsp", "head_top_lsp", "pelvis_mpii", "thorax_mpii",
    "spine_h36m", "jaw_h36m", "head_h36m", "nose", "l_eye", "r_eye", "l_ear", "r_ear",
)
SPIN_24 = JointSet("spin24", SPIN_24_NAMES, _flip_from_names(SPIN_24_NAMES),
                   description="SPIN/CLIFF npz 24-joint GT order ('part', 'S')")
# SPIN: J24_TO_J14 — evaluation on H36M uses the H36M head (18), not the LSP head top.
LSP14_FROM_SPIN24 = tuple(range(13)) + (18,)
# Which H36M-17 joint provides each SPIN-24 joint (None: not in H36M-17).
SPIN24_FROM_H36M17: Tuple[Optional[int], ...] = (
    6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 8, 7, 9, 10, None, None, None, None, None,
)

OPENPOSE_25_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "mid_hip",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
    "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel",
)
OPENPOSE_25 = JointSet("openpose25", OPENPOSE_25_NAMES, _flip_from_names(OPENPOSE_25_NAMES),
                       description="OpenPose BODY_25")

# COCO-18 as used by 3DPW's poses2d (OpenPose COCO order).
COCO_18_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
    "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
COCO_18 = JointSet("coco18", COCO_18_NAMES, _flip_from_names(COCO_18_NAMES),
                   description="OpenPose COCO-18 (3DPW poses2d)")

MANO_16_NAMES = (
    "wrist", "index1", "index2", "index3", "middle1", "middle2", "middle3", "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3", "thumb1", "thumb2", "thumb3",
)
MANO_16 = JointSet(
    "mano16", MANO_16_NAMES, tuple(range(16)),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14),
    description="MANO kinematic joints (16); a hand has no left/right pairs (flipping changes the hand model)",
)

FREIHAND_21_NAMES = (
    "wrist", "thumb1", "thumb2", "thumb3", "thumb4", "index1", "index2", "index3", "index4",
    "middle1", "middle2", "middle3", "middle4", "ring1", "ring2", "ring3", "ring4",
    "pinky1", "pinky2", "pinky3", "pinky4",
)
FREIHAND_21 = JointSet("freihand21", FREIHAND_21_NAMES, tuple(range(21)),
                       description="FreiHAND 21 keypoints (wrist, then thumb..pinky base->tip)")
# Official MANO fingertip vertices, in the order thumb, index, middle, ring, pinky.
MANO_FINGERTIP_VERTICES = (744, 320, 443, 555, 672)
# FreiHAND-21 from [MANO-16 joints, thumb tip, index tip, middle tip, ring tip, pinky tip] (21 rows).
FREIHAND21_FROM_MANO21 = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)

JOINT_SETS: Dict[str, JointSet] = {
    s.name: s for s in (SMPL_24, H36M_17, LSP_14, SPIN_24, OPENPOSE_25, COCO_18, MANO_16, FREIHAND_21)
}


def get_joint_set(name: str) -> JointSet:
    """Look up a joint set by name (``smpl24``, ``h36m17``, ``lsp14``, ``spin24``, ``openpose25``, ...)."""
    try:
        return JOINT_SETS[name]
    except KeyError:
        raise KeyError(f"unknown joint set {name!r}; known: {sorted(JOINT_SETS)}") from None


def compose(outer: Tuple[int, ...], inner: Tuple[int, ...]) -> List[int]:
    """Index map C_FROM_A from C_FROM_B (outer) and B_FROM_A (inner)."""
    return [inner[i] for i in outer]
