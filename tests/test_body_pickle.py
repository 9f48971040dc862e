"""Official SMPL/MANO pickles: the restricted unpickler reads the official layout (numpy + chumpy-like objects +
scipy sparse) without chumpy, refuses pickles that would run code, and missing files say how to get them."""
import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch
from smplx.lbs import lbs as smplx_lbs

import hmr.body as hb
from hmr.utils.safe_pickle import UnsafePickleError, load_model_pickle


class _FakeCh:
    """Pickles like chumpy.ch.Ch: state is the instance __dict__ holding the array in 'x'."""

    def __init__(self, x):
        self.x = np.asarray(x)
        self._dirty_vars = set()


def _dumps_official(obj) -> bytes:
    """Pickle (protocol 2, as the official files) with a fake 'chumpy.ch.Ch' registered only while pickling."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    _FakeCh.__module__, _FakeCh.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch, chumpy.ch = _FakeCh, ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    try:
        return pickle.dumps(obj, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def _official_layout(kind="body", seed=0):
    rng = np.random.default_rng(seed)
    js = hb.joint_sets.SMPL_24 if kind == "body" else hb.joint_sets.MANO_16
    nj, nv = len(js), 50
    weights = rng.random((nv, nj)) ** 3
    reg = rng.random((nj, nv)) * (rng.random((nj, nv)) < 0.2)
    reg[:, 0] += 1e-3
    parents = np.array(js.parents, dtype=np.int64)
    parents[0] = 4294967295
    d = {
        "v_template": rng.normal(size=(nv, 3)),
        "shapedirs": _FakeCh(rng.normal(size=(nv, 3, 12)) * 0.1),
        "posedirs": rng.normal(size=(nv, 3, (nj - 1) * 9)) * 0.01,
        "J_regressor": scipy.sparse.csc_matrix(reg / reg.sum(1, keepdims=True)),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.stack([parents, np.arange(nj)]),
        "f": rng.integers(0, nv, size=(30, 3)).astype(np.uint32),
        "bs_type": "lrotmin", "bs_style": "lbs",
    }
    if kind == "hand":
        d["hands_mean"] = rng.normal(size=45) * 0.1
        d["hands_components"] = rng.normal(size=(45, 45))
    return d


@pytest.mark.parametrize("kind", ["body", "hand"])
def test_official_layout_loads_and_matches_smplx(tmp_path, kind):
    d = _official_layout(kind)
    path = tmp_path / ("SMPL_NEUTRAL.pkl" if kind == "body" else "MANO_RIGHT.pkl")
    path.write_bytes(_dumps_official(d))
    assert b"chumpy.ch" in path.read_bytes() and b"scipy.sparse" in path.read_bytes()
    model = hb.load(path, dtype=torch.float64)
    assert "chumpy" not in sys.modules
    assert model.kind == kind and model.num_betas == 10 and model.has_pose_correctives
    rot = torch.randn(2, model.num_joints, 3, 3, dtype=torch.float64)
    betas = torch.randn(2, 10, dtype=torch.float64)
    out = model(full_pose=rot, betas=betas)
    dt = torch.float64
    posedirs = torch.tensor(d["posedirs"].reshape(-1, d["posedirs"].shape[-1]).T)
    verts, joints = smplx_lbs(betas, rot, torch.tensor(d["v_template"]), torch.tensor(d["shapedirs"].x[:, :, :10]),
                              posedirs, torch.tensor(d["J_regressor"].toarray()), torch.tensor(list(model.parents)),
                              torch.tensor(d["weights"], dtype=dt), pose2rot=False)
    assert (out.vertices - verts).abs().max() < 1e-10
    assert (out.joints - joints).abs().max() < 1e-10
    if kind == "hand":
        assert torch.allclose(model.pose_mean, torch.tensor(d["hands_mean"]).view(15, 3))
        assert model.keypoint_sets() == ["mano16"]  # fingertip ids need MANO's 778-vertex topology
    else:
        assert model.keypoint_sets() == ["smpl24"]  # no H36M regressor file, not SMPL's topology


def test_h36m_regressor_file_next_to_smpl_enables_eval_sets(tmp_path):
    d = _official_layout("body")
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(_dumps_official(d))
    reg = np.random.default_rng(1).random((17, 50))
    np.save(tmp_path / "J_regressor_h36m.npy", reg / reg.sum(1, keepdims=True))
    model = hb.load(tmp_path / "SMPL_NEUTRAL.pkl", dtype=torch.float64)
    out = model(betas=torch.randn(1, 10, dtype=torch.float64))
    lsp = model.keypoints(out.vertices, out.joints, "lsp14")
    h36m = torch.tensor(reg / reg.sum(1, keepdims=True)) @ out.vertices[0]
    assert torch.allclose(lsp[0], h36m[list(hb.joint_sets.LSP14_FROM_H36M17)])


class _RunsCode:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"v_template": np.zeros((3, 3)), "evil": _RunsCode(marker)}, protocol=2)
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|refusing"):
        load_model_pickle(payload)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load"),
                                         ("torch", "load")])
def test_other_globals_are_refused(module, name):
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00."
    with pytest.raises(UnsafePickleError):
        load_model_pickle(payload)


def test_missing_official_file_names_path_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        hb.load("smpl-neutral", model_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl") in msg and "smpl.is.tue.mpg.de" in msg
    with pytest.raises(FileNotFoundError, match="mano.is.tue.mpg.de"):
        hb.load("mano-left", model_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown body model"):
        hb.load("smpl-child")


def test_not_a_model_file(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"a": np.zeros(3)}, protocol=2))
    with pytest.raises(ValueError, match="missing keys"):
        hb.load(path)


def test_all_zero_posedirs_skip_the_pose_corrective_product(tmp_path):
    d = _official_layout("body")
    d["posedirs"] = _FakeCh(np.zeros_like(d["posedirs"]))
    (tmp_path / "m.pkl").write_bytes(_dumps_official(d))
    model = hb.load(tmp_path / "m.pkl", dtype=torch.float64)
    assert not model.has_pose_correctives and model.posedirs is None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_official_file_names_the_path(tmp_path, damage):
    good = _dumps_official(_official_layout("body"))
    raw = {"truncated": good[: len(good) // 2], "garbage": b"\x80\x02}q\x00Xgarbage" + bytes(range(40)),
           "empty": b""}[damage]
    path = tmp_path / "smpl" / "SMPL_NEUTRAL.pkl"
    path.parent.mkdir()
    path.write_bytes(raw)
    with pytest.raises(ValueError) as err:
        hb.load("smpl-neutral", model_dir=tmp_path)
    msg = str(err.value)
    assert str(path) in msg and "corrupt" in msg and "smpl.is.tue.mpg.de" in msg
    assert isinstance(err.value, pickle.UnpicklingError)  # still an unpickling error for callers that catch that


def test_corrupt_dataset_pickle_names_the_path(tmp_path):
    from hmr.utils.safe_pickle import load_numpy_pickle

    path = tmp_path / "seq.pkl"
    path.write_bytes(pickle.dumps({"poses": np.zeros((2, 3))}, protocol=2)[:-7])
    with pytest.raises(ValueError, match=str(path)):
        load_numpy_pickle(path)


def test_refused_global_in_a_file_names_the_path(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x02cbuiltins\neval\nq\x00.")
    with pytest.raises(UnsafePickleError, match=str(path)):
        hb.load(path)
