"""Which Anny bones merge into each SMPL/MANO joint, and where each merged joint sits.

A group's skinning weight is the sum of its bones' weights; its joint is the head of one bone or the mean
of several heads (``shared/reference/open-body-models.md``). Every Anny bone lands in exactly one group.
"""
from __future__ import annotations

import fnmatch
from typing import Dict, List, Sequence, Tuple

import numpy as np

from hmr.body import joint_sets

Group = Tuple[Tuple[str, ...], Tuple[str, ...]]  # (bone patterns, bones whose heads are averaged for the joint)


def _side(s: str) -> Dict[str, Group]:
    side = {"L": "l", "R": "r"}[s]
    return {
        f"{side}_hip": ((f"upperleg01.{s}", f"upperleg02.{s}"), (f"upperleg01.{s}",)),
        f"{side}_knee": ((f"lowerleg01.{s}", f"lowerleg02.{s}"), (f"lowerleg01.{s}",)),
        f"{side}_ankle": ((f"foot.{s}",), (f"foot.{s}",)),
        f"{side}_foot": ((f"toe*.{s}",), tuple(f"toe{i}-1.{s}" for i in range(1, 6))),
        f"{side}_collar": ((f"clavicle.{s}", f"shoulder01.{s}"), (f"clavicle.{s}",)),
        f"{side}_shoulder": ((f"upperarm01.{s}", f"upperarm02.{s}"), (f"upperarm01.{s}",)),
        f"{side}_elbow": ((f"lowerarm01.{s}", f"lowerarm02.{s}"), (f"lowerarm01.{s}",)),
        f"{side}_wrist": ((f"wrist.{s}", f"metacarpal?.{s}"), (f"wrist.{s}",)),
        # The hand joint sits at the centroid of the four knuckles (index..pinky bases).
        f"{side}_hand": ((f"finger*.{s}",), tuple(f"finger{i}-1.{s}" for i in range(2, 6))),
    }


BODY_GROUPS: Dict[str, Group] = {
    "pelvis": (("root", "pelvis.L", "pelvis.R", "spine05", "spine04"), ("root",)),
    "spine1": (("spine03",), ("spine03",)),
    "spine2": (("spine02",), ("spine02",)),
    "spine3": (("spine01",), ("spine01",)),
    "neck": (("neck01", "neck02", "neck03"), ("neck01",)),
    "head": (("head", "eye.L", "eye.R"), ("head",)),
    **_side("L"),
    **_side("R"),
}

# Anny fingers: 1 thumb, 2 index, 3 middle, 4 ring, 5 pinky. MANO order: index, middle, pinky, ring, thumb.
_MANO_FINGER = {"index": 2, "middle": 3, "pinky": 5, "ring": 4, "thumb": 1}
HAND_GROUPS: Dict[str, Group] = {
    "wrist": (("root", "wrist.R", "metacarpal?.R"), ("wrist.R",)),
    **{f"{finger}{k}": ((f"finger{n}-{k}.R",), (f"finger{n}-{k}.R",))
       for finger, n in _MANO_FINGER.items() for k in (1, 2, 3)},
}


def assign_bones(bone_labels: Sequence[str], bone_parents: Sequence[int], kind: str) -> np.ndarray:
    """Group index of every Anny bone (in SMPL-24 or MANO-16 order); checks the trees are compatible."""
    joint_set = joint_sets.SMPL_24 if kind == "body" else joint_sets.MANO_16
    groups = BODY_GROUPS if kind == "body" else HAND_GROUPS
    group_of = np.full(len(bone_labels), -1, dtype=np.int64)
    for g, joint in enumerate(joint_set.names):
        for b, label in enumerate(bone_labels):
            if any(fnmatch.fnmatchcase(label, pattern) for pattern in groups[joint][0]):
                if group_of[b] >= 0:
                    raise ValueError(f"Anny bone {label} matches two groups")
                group_of[b] = g
    missing = [bone_labels[b] for b in np.flatnonzero(group_of < 0)]
    if missing:
        raise ValueError(f"Anny bones without a {joint_set.name} group: {missing}")
    for b, p in enumerate(bone_parents):
        if p < 0:
            continue
        g, gp = group_of[b], group_of[p]
        if gp != g and gp != joint_set.parents[g]:
            raise ValueError(f"bone {bone_labels[b]} ({joint_set.names[g]}) has parent {bone_labels[p]} "
                             f"({joint_set.names[gp]}), not {joint_set.name}'s parent of that joint")
    return group_of


def group_joint_locations(bone_heads: np.ndarray, bone_labels: Sequence[str], kind: str) -> np.ndarray:
    """Joint locations (N, J, 3) from Anny bone heads (N, B, 3)."""
    joint_set = joint_sets.SMPL_24 if kind == "body" else joint_sets.MANO_16
    groups = BODY_GROUPS if kind == "body" else HAND_GROUPS
    index = {label: i for i, label in enumerate(bone_labels)}
    return np.stack([bone_heads[:, [index[b] for b in groups[j][1]]].mean(axis=1) for j in joint_set.names], 1)


def group_matrix(group_of: np.ndarray, num_groups: int) -> np.ndarray:
    """(B, G) one-hot matrix: ``skinning @ group_matrix`` sums the weights of merged bones."""
    out = np.zeros((len(group_of), num_groups))
    out[np.arange(len(group_of)), group_of] = 1.0
    return out
