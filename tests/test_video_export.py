"""Track exports re-read by independent readers: the .glb re-posed by skinning from the file alone matches the
body model's vertices, the BVH parsed by bvhio reproduces its joints, the .npz holds smplx's names."""
import numpy as np
import pygltflib as gl
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmr.rotations import axis_angle_to_matrix
from hmr.video.export_gltf import write_track_glb
from hmr.video.export_motion import OPENCV_TO_Y_UP, write_track_bvh, write_track_npz

C = OPENCV_TO_Y_UP
_COMPONENTS = {gl.FLOAT: np.float32, gl.UNSIGNED_SHORT: np.uint16, gl.UNSIGNED_INT: np.uint32}
_WIDTH = {gl.SCALAR: 1, gl.VEC3: 3, gl.VEC4: 4, gl.MAT4: 16}


def _track(body_model, frames=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = 0.5 * torch.randn(body_model.num_joints, 3, generator=g)
    step = 0.05 * torch.randn(body_model.num_joints, 3, generator=g)
    aa = torch.stack([base + t * step for t in range(frames)])
    rotmats = axis_angle_to_matrix(aa).double().numpy()
    betas = torch.randn(body_model.num_betas, generator=g).numpy()
    transl = np.stack([[0.1 * t, 0.05, 3.0 + 0.02 * t] for t in range(frames)])
    times = np.cumsum(np.r_[0.0, np.full(frames - 1, 1 / 30)])
    times[3:] += 0.01   # a variable frame rate is kept
    return rotmats, betas, transl, times


def _model_output(body_model, rotmats, betas, transl):
    with torch.no_grad():
        out = body_model(full_pose=torch.as_tensor(rotmats, dtype=torch.float32),
                         betas=torch.as_tensor(betas, dtype=torch.float32)[None].expand(len(rotmats), -1))
    return (out.vertices.double().numpy() + transl[:, None]), (out.joints.double().numpy() + transl[:, None])


def _accessor(doc, blob, index):
    acc = doc.accessors[index]
    view = doc.bufferViews[acc.bufferView]
    dtype = _COMPONENTS[acc.componentType]
    data = np.frombuffer(blob, dtype=dtype, count=acc.count * _WIDTH[acc.type],
                         offset=(view.byteOffset or 0) + (acc.byteOffset or 0))
    return data.reshape(acc.count, _WIDTH[acc.type]).astype(np.float64)


def _quat_matrix(q):
    return Rotation.from_quat(q).as_matrix()   # scipy: XYZW, like glTF


def _skin_from_file(path):
    """Vertices of every keyframe, computed from the .glb alone (node tree, animation, skin, weights)."""
    doc = gl.GLTF2().load_binary(str(path))
    blob = doc.binary_blob()
    prim = doc.meshes[0].primitives[0]
    rest = _accessor(doc, blob, prim.attributes.POSITION)
    sets = []
    k = 0
    while getattr(prim.attributes, f"JOINTS_{k}", None) is not None:
        sets.append((_accessor(doc, blob, getattr(prim.attributes, f"JOINTS_{k}")).astype(int),
                     _accessor(doc, blob, getattr(prim.attributes, f"WEIGHTS_{k}"))))
        k += 1
    skin = doc.skins[0]
    ibm = _accessor(doc, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    anim = doc.animations[0]
    times = _accessor(doc, blob, anim.samplers[0].input)[:, 0]
    tracks = {}
    for ch in anim.channels:
        tracks[(ch.target.node, ch.target.path)] = _accessor(doc, blob, anim.samplers[ch.sampler].output)
    targets = [_accessor(doc, blob, t["POSITION"]) for t in (prim.targets or [])]
    morph = tracks.get((0, "weights"))
    parent = {c: i for i, n in enumerate(doc.nodes) for c in (n.children or [])}
    frames = []
    for f in range(len(times)):
        world = {}

        def world_of(i):
            if i in world:
                return world[i]
            node = doc.nodes[i]
            m = np.eye(4)
            t = tracks.get((i, "translation"))
            r = tracks.get((i, "rotation"))
            m[:3, 3] = t[f] if t is not None else (node.translation or [0, 0, 0])
            m[:3, :3] = _quat_matrix(r[f] if r is not None else (node.rotation or [0, 0, 0, 1]))
            world[i] = (world_of(parent[i]) if i in parent else np.eye(4)) @ m
            return world[i]

        mats = np.stack([world_of(j) @ ibm[n] for n, j in enumerate(skin.joints)])
        bind = rest.copy()
        if targets:   # morph targets (pose correctives) act before skinning, weighted per frame
            w = morph.reshape(len(times), len(targets))[f]
            bind += np.tensordot(w, np.stack(targets), axes=1)
        v = np.zeros_like(rest)
        for joints, weights in sets:
            for c in range(4):
                m = mats[joints[:, c]]
                v += weights[:, c:c + 1] * (np.einsum("vij,vj->vi", m[:, :3, :3], bind) + m[:, :3, 3])
        frames.append(v)
    return np.stack(frames), times


@pytest.mark.parametrize("model_name", ["open-smpl", "open-mano-right"])
def test_glb_reposed_from_the_file_matches_the_body_model(model_name, tmp_path):
    from hmr import body
    body_model = body.load(model_name)
    rotmats, betas, transl, times = _track(body_model)
    path = write_track_glb(tmp_path / "track.glb", body_model, rotmats, betas, transl, times)
    verts, file_times = _skin_from_file(path)
    expected, _ = _model_output(body_model, rotmats, betas, transl)
    error_mm = 1e3 * np.abs(verts - expected @ C.T).max()
    assert error_mm < 1.0, error_mm
    assert np.allclose(file_times, times - times[0], atol=1e-6)
    import trimesh   # an independent reader opens it as a mesh scene
    scene = trimesh.load(path)
    assert sum(len(g.vertices) for g in scene.geometry.values()) == body_model.num_vertices


def test_glb_carries_pose_correctives_as_animated_morph_targets(tmp_path):
    """An official-style model (pose correctives: here random ones on the open hand) is reproduced too."""
    import dataclasses

    from hmr.body.model import BodyModel
    from hmr.body.registry import load_data
    data = load_data("open-mano-right")
    shape = ((len(data.parents) - 1) * 9, 3 * len(data.v_template))
    posedirs = 0.01 * np.random.default_rng(0).standard_normal(shape)
    body_model = BodyModel(dataclasses.replace(data, posedirs=posedirs))
    rotmats, betas, transl, times = _track(body_model, frames=4)
    path = write_track_glb(tmp_path / "track.glb", body_model, rotmats, betas, transl, times)
    verts, _ = _skin_from_file(path)
    expected, _ = _model_output(body_model, rotmats, betas, transl)
    assert 1e3 * np.abs(verts - expected @ C.T).max() < 1.0
    without, _ = _model_output(BodyModel(data), rotmats, betas, transl)
    assert 1e3 * np.abs(expected - without).max() > 5.0, "the correctives must matter for the test to mean anything"


def test_bvh_parsed_by_bvhio_reproduces_the_joints(tmp_path, smpl):
    import bvhio
    rotmats, betas, transl, times = _track(smpl, frames=5)
    path = write_track_bvh(tmp_path / "track.bvh", smpl, rotmats, betas, transl, times)
    root = bvhio.readAsHierarchy(str(path))
    joints = {j.Name: j for j, _, _ in root.layout()}
    names = smpl.joint_set.names
    _, expected = _model_output(smpl, rotmats, betas, transl)
    expected = expected @ C.T
    for f in range(len(rotmats)):
        root.loadPose(f, recursive=True)
        got = np.array([list(joints[n].PositionWorld) for n in names])
        assert 1e3 * np.abs(got - expected[f]).max() < 1.0, f
    assert "Frames: 5" in path.read_text()


def test_npz_holds_smplx_names(tmp_path, smpl, mano_right):
    for model, key, width in ((smpl, "body_pose", 69), (mano_right, "hand_pose", 45)):
        rotmats, betas, transl, times = _track(model, frames=4)
        path = write_track_npz(tmp_path / f"{model.name}.npz", model, rotmats, betas, transl, times,
                               np.arange(4), track_id=2)
        with np.load(path, allow_pickle=False) as data:
            assert data[key].shape == (4, width) and data["global_orient"].shape == (4, 3)
            assert data["betas"].shape == (model.num_betas,) and int(data["track_id"]) == 2
            back = axis_angle_to_matrix(torch.as_tensor(data["global_orient"])).numpy()
            assert np.allclose(back, rotmats[:, 0], atol=1e-9)
            assert np.allclose(data["timestamps"], times)
