"""BodyModel forward kinematics against smplx.lbs.lbs (the oracle), on official-layout and open models."""
import numpy as np
import pytest
import torch
from smplx.lbs import lbs as smplx_lbs

import hmr.body as hb
from hmr.body.lbs import kinematic_levels
from hmr.body.model_data import ModelData


def _random_model(kind: str = "body", posedirs: bool = True, seed: int = 0) -> ModelData:
    """A small SMPL/MANO-structured model with random arrays (any tree of the right kind)."""
    rng = np.random.default_rng(seed)
    js = hb.joint_sets.SMPL_24 if kind == "body" else hb.joint_sets.MANO_16
    nj, nv = len(js), 60
    weights = rng.random((nv, nj)) ** 4
    weights /= weights.sum(1, keepdims=True)
    reg = rng.random((nj, nv))
    reg /= reg.sum(1, keepdims=True)
    return ModelData(
        name=f"random-{kind}", kind=kind, v_template=rng.normal(size=(nv, 3)), shapedirs=rng.normal(size=(nv, 3, 10)) * 0.1,
        J_regressor=reg, weights=weights, parents=js.parents, faces=rng.integers(0, nv, size=(40, 3)),
        posedirs=rng.normal(size=((nj - 1) * 9, nv * 3)) * 0.01 if posedirs else None)


def _oracle(data: ModelData, rotations: torch.Tensor, betas: torch.Tensor):
    dt = torch.float64
    nv = data.v_template.shape[0]
    posedirs = data.posedirs if data.posedirs is not None else np.zeros(((len(data.parents) - 1) * 9, nv * 3))
    return smplx_lbs(betas, rotations, torch.tensor(data.v_template, dtype=dt), torch.tensor(data.shapedirs, dtype=dt),
                     torch.tensor(posedirs, dtype=dt), torch.tensor(data.J_regressor, dtype=dt),
                     torch.tensor(data.parents), torch.tensor(data.weights, dtype=dt), pose2rot=False)


@pytest.mark.parametrize("kind,posedirs", [("body", True), ("body", False), ("hand", True)])
def test_matches_smplx_lbs_float64_any_matrices(kind, posedirs):
    data = _random_model(kind, posedirs)
    model = hb.BodyModel(data, dtype=torch.float64)
    rot = torch.randn(3, model.num_joints, 3, 3, dtype=torch.float64)  # not rotations at all
    betas = torch.randn(3, 10, dtype=torch.float64)
    out = model(full_pose=rot, betas=betas)
    verts, joints = _oracle(data, rot, betas)
    assert torch.allclose(out.vertices, verts, atol=1e-10, rtol=0)
    assert torch.allclose(out.joints, joints, atol=1e-10, rtol=0)


def test_open_models_match_smplx_lbs():
    for name in ("open-smpl", "open-mano-right", "open-mano-left"):
        data = hb.registry.load_data(name)
        model = hb.BodyModel(data, dtype=torch.float64)
        rot = torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(2, model.num_joints, 3, 3, dtype=torch.float64)
        betas = torch.randn(2, 10, dtype=torch.float64)
        out = model(full_pose=rot, betas=betas)
        verts, joints = _oracle(data, rot, betas)
        assert (out.vertices - verts).abs().max() < 1e-6, name
        assert (out.joints - joints).abs().max() < 1e-6, name


@pytest.mark.parametrize("name", ["open-smpl", "open-mano-right", "open-mano-left"])
def test_zero_pose_zero_shape_is_template(name):
    data = hb.registry.load_data(name)
    model = hb.load(name, dtype=torch.float64)
    out = model()
    assert torch.allclose(out.vertices[0], torch.tensor(data.v_template), atol=1e-12)
    assert torch.allclose(out.joints[0], torch.tensor(data.J_regressor @ data.v_template), atol=1e-12)
    assert not model.has_pose_correctives


def test_axis_angle_and_matrix_inputs_agree_and_split_inputs_equal_full_pose():
    model = hb.BodyModel(_random_model("body"), dtype=torch.float64)
    aa = 0.5 * torch.randn(2, 24, 3, dtype=torch.float64)
    from scipy.spatial.transform import Rotation
    mats = torch.tensor(Rotation.from_rotvec(aa.reshape(-1, 3).numpy()).as_matrix()).reshape(2, 24, 3, 3)
    a = model(global_orient=aa[:, 0], body_pose=aa[:, 1:].reshape(2, -1))
    b = model(full_pose=mats)
    c = model(global_orient=mats[:, :1], body_pose=mats[:, 1:])
    assert torch.allclose(a.vertices, b.vertices, atol=1e-10)
    assert torch.allclose(c.vertices, b.vertices, atol=1e-12)


def test_non_orthogonal_matrices_pass_through_with_gradients():
    model = hb.load("open-smpl", dtype=torch.float64)
    m = (torch.eye(3, dtype=torch.float64) + 0.4 * torch.randn(2, 24, 3, 3, dtype=torch.float64)).requires_grad_()
    out = model(full_pose=m)
    assert out.full_pose.data_ptr() == m.data_ptr() or torch.equal(out.full_pose, m)
    out.vertices.square().sum().backward()
    assert m.grad is not None and torch.isfinite(m.grad).all() and (m.grad.abs().sum(dim=(-1, -2)) > 0).all()
    # Scaling a leaf joint's matrix scales its offset from the parent joint: no hidden orthogonalization.
    scaled = m.detach().clone()
    scaled[:, 4] *= 2.0  # l_knee rotation doubles the knee->ankle bone
    j0, j1 = model(full_pose=m.detach()).joints, model(full_pose=scaled).joints
    assert torch.allclose((j1[:, 7] - j1[:, 4]), 2 * (j0[:, 7] - j0[:, 4]), atol=1e-12)


def test_gradcheck_small_model():
    model = hb.BodyModel(_random_model("hand", posedirs=True), dtype=torch.float64)
    rot = torch.randn(1, 16, 3, 3, dtype=torch.float64, requires_grad=True)
    betas = torch.randn(1, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r, b: model(full_pose=r, betas=b).vertices, (rot, betas))


def test_transl_and_partial_betas():
    model = hb.load("open-mano-right", dtype=torch.float64)
    betas = torch.randn(2, 4, dtype=torch.float64)
    full = torch.cat([betas, torch.zeros(2, 6, dtype=torch.float64)], 1)
    t = torch.randn(2, 3, dtype=torch.float64)
    a, b = model(betas=betas, transl=t), model(betas=full)
    assert torch.allclose(a.vertices, b.vertices + t[:, None], atol=1e-12)
    assert torch.allclose(a.joints, b.joints + t[:, None], atol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(body_pose=torch.zeros(2, 22, 3)), "body_pose"),
    (dict(hand_pose=torch.zeros(1, 45)), "body model"),
    (dict(betas=torch.zeros(1, 11)), "betas"),
    (dict(global_orient=torch.zeros(2, 3), betas=torch.zeros(3, 10)), "batch size"),
    (dict(full_pose=torch.zeros(1, 24, 3, 3), global_orient=torch.zeros(1, 3)), "either full_pose"),
    (dict(transl=torch.zeros(1, 2)), "transl"),
])
def test_bad_inputs_raise_clear_errors(kwargs, match):
    model = hb.load("open-smpl")
    with pytest.raises(ValueError, match=match):
        model(**kwargs)


def test_kinematic_levels_reject_bad_trees():
    with pytest.raises(ValueError):
        kinematic_levels([0, 0])
    with pytest.raises(ValueError):
        kinematic_levels([-1, 2, 0])
    levels = kinematic_levels(hb.joint_sets.SMPL_24.parents)
    assert sorted(j for level in levels.levels for j in level) == list(range(24))
