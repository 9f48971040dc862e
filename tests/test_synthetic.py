"""Synthetic sets end to end: labels agree with the rendered pixels, parameters reproduce the meshes, the
project's loaders read the files back, seeds reproduce, interrupted runs resume, the CLI works."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmr.config import load_config
from hmr.data.synthetic import SetSpec, generate_set
from hmr.data.synthetic.samples import BodySampler, HandSampler, SceneOptions
from hmr.vis.render import Renderer

REPO = Path(__file__).resolve().parents[1]
TINY_OVERRIDES = {
    "body": ["shard_size=3", "image_sizes=[[96,80],[80,96]]", "splits={train: 5, val: 2, test: 3}"],
    "hand": ["shard_size=3", "image_sizes=[[64,64]]", "splits={train: 5, val: 2, test: 3}"],
}


@pytest.fixture(scope="module")
def mano(mano_right, mano_left):
    return mano_right, mano_left


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def _on_mask(uv, mask, radius=2):
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    px = np.round(uv).astype(int)
    return grown[px[:, 1], px[:, 0]]


def test_body_labels_land_on_the_silhouette_and_reproduce_the_mesh(smpl):
    options = SceneOptions(image_sizes=((160, 128),), occlusion_share=0.0, truncation_share=0.5)
    samples = BodySampler(smpl, options).generate(np.random.default_rng(0), 8)
    renderer = Renderer(128, 160, "torch")
    for s in samples:
        a = s.annotation
        visible = a["part"][:, 2] > 0
        assert visible.sum() >= 6
        assert _on_mask(a["part"][visible, :2], s.person_mask).all()
        op_visible = a["openpose"][:, 2] > 0
        assert _on_mask(a["openpose"][op_visible, :2], s.person_mask).mean() > 0.95
        # pose (axis-angle) and rotmat agree; the parameters + transl reproduce the rendered silhouette
        np.testing.assert_allclose(Rotation.from_rotvec(a["pose"].reshape(24, 3)).as_matrix(), a["rotmat"],
                                   atol=1e-5)
        with torch.no_grad():
            out = smpl(full_pose=torch.from_numpy(a["rotmat"][None]).float(),
                       betas=torch.from_numpy(a["shape"][None]).float(),
                       transl=torch.from_numpy(a["transl"][None]).float())
        again = renderer.render(out.vertices[0].numpy(), smpl.faces.numpy(), a["K"])
        assert _iou(again.mask, s.person_mask) > 0.98
        # S is root-centred (pelvis joint) and consistent with the 2D keypoints through K
        pelvis = out.joints[0, 0].double().numpy()
        uvw = (a["S"][:, :3] + pelvis) @ a["K"].T
        np.testing.assert_allclose(uvw[:, :2] / uvw[:, 2:], a["part"][:, :2], atol=1e-3)
        assert a["scale"] * 200 >= 1.0 and np.all(a["img_size"] == [160, 128])


def test_hand_labels_land_on_the_silhouette_and_mano_reproduces_the_mesh(mano):
    right, left = mano
    options = SceneOptions(image_sizes=((112, 112),), fov_deg=(30, 60), fill=(0.4, 0.9), occlusion_share=0.0,
                           truncation_share=0.0, left_share=0.5)
    samples = HandSampler(right, left, options).generate(np.random.default_rng(1), 10)
    sides = {s.annotation["is_left"] for s in samples}
    assert sides == {True, False}
    renderer = Renderer(112, 112, "torch")
    mean = right.pose_mean.double().numpy().reshape(15, 3)
    for s in samples:
        a = s.annotation
        uvw = a["xyz"] @ a["K"].T
        uv = uvw[:, :2] / uvw[:, 2:]
        assert _on_mask(uv, s.person_mask).mean() >= 0.95
        again = renderer.render(a["verts"], right.faces.numpy(), a["K"])
        assert _iou(again.mask, s.person_mask) > 0.97  # a stored (mirrored) left hand matches its image too
        # FreiHAND's 61 numbers: axis-angle relative to the mean pose, betas; with transl they give the verts
        aa = a["mano"][:48].reshape(16, 3).copy()
        aa[1:] += mean
        R = Rotation.from_rotvec(aa).as_matrix()
        np.testing.assert_allclose(R, a["rotmat"], atol=1e-5)
        with torch.no_grad():
            out = right(full_pose=torch.from_numpy(R[None]).float(),
                        betas=torch.from_numpy(a["mano"][None, 48:58]).float(),
                        transl=torch.from_numpy(a["transl"][None]).float())
        np.testing.assert_allclose(out.vertices[0].numpy(), a["verts"], atol=2e-4)
        np.testing.assert_allclose(a["scale"], np.linalg.norm(a["xyz"][9] - a["xyz"][10]), rtol=1e-9)


def _spec(kind, name, seed=0):
    """The default preset's settings (all scene effects on), shrunk (the same overrides the CLI test passes)."""
    cfg = load_config(REPO / "configs/synthetic/default.yaml", [f"{kind}.{o}" for o in TINY_OVERRIDES[kind]])
    return SetSpec.from_config(kind, dict(cfg[kind].to_dict(), name=name), seed=seed)


@pytest.fixture(scope="module")
def body_set(tmp_path_factory, smpl):
    root = tmp_path_factory.mktemp("synth")
    summary = generate_set(_spec("body", "b"), root=str(root), progress=False)
    return root / "b", summary


@pytest.fixture(scope="module")
def hand_set(tmp_path_factory, mano):
    root = tmp_path_factory.mktemp("synth")
    summary = generate_set(_spec("hand", "h"), root=str(root), progress=False)
    return root / "h", summary


def test_body_set_files_and_summary(body_set):
    set_dir, summary = body_set
    assert summary["counts"] == {"train": 5, "val": 2, "test": 3}
    assert sum(summary["pose"]["archetypes"].values()) == 10
    assert json.loads((set_dir / "summary.json").read_text())["counts"] == summary["counts"]
    with np.load(set_dir / "train.npz", allow_pickle=False) as npz:
        keys = set(npz.files)
        assert {"imgname", "center", "scale", "part", "S", "pose", "shape", "has_smpl", "openpose", "gender",
                "focal_l", "K", "img_size", "transl", "rotmat"} <= keys
        assert npz["part"].shape == (5, 24, 3) and npz["S"].shape == (5, 24, 4) and npz["pose"].shape == (5, 72)
        assert npz["openpose"].shape == (5, 25, 3) and npz["rotmat"].shape == (5, 24, 3, 3)
        assert list(npz["imgname"]) == [f"images/train/{i:08d}.jpg" for i in range(5)]
        h, w = npz["img_size"][0]
        assert cv2.imread(str(set_dir / npz["imgname"][0])).shape == (h, w, 3)
    sheet = cv2.imread(str(set_dir / "contact_sheet.png"))
    assert sheet is not None and sheet.shape == (4 * 192, 6 * 192, 3)


def test_body_set_reads_back_through_the_project_loader(body_set):
    from hmr.data import spin_npz
    from hmr.data.base import DatasetOptions

    set_dir, _ = body_set
    with np.load(set_dir / "test.npz", allow_pickle=False) as npz:
        ref = {k: npz[k] for k in npz.files}
    ds = spin_npz.SpinNpzDataset("synth", set_dir / "test.npz", set_dir, DatasetOptions())
    assert len(ds) == 3
    for i in range(3):
        ann = ds.annotation(i)
        np.testing.assert_allclose(ann.pose, ref["rotmat"][i], atol=1e-6)
        np.testing.assert_allclose(ann.betas, ref["shape"][i])
        np.testing.assert_allclose(ann.keypoints_2d, ref["part"][i])
        np.testing.assert_allclose(ann.joints_3d, ref["S"][i])
        assert ann.focal == pytest.approx(ref["focal_l"][i]) and tuple(ann.img_size) == tuple(ref["img_size"][i])
        assert ann.image_path.is_file()


def test_hand_set_layout_and_loader_read_back(hand_set):
    set_dir, summary = hand_set
    assert summary["counts"] == {"train": 5, "val": 2, "test": 3}
    for prefix, n in (("training", 5), ("validation", 2), ("evaluation", 3)):
        for key, trailing in (("K", [3, 3]), ("xyz", [21, 3]), ("verts", [778, 3]), ("mano", [1, 61])):
            arr = np.asarray(json.loads((set_dir / f"{prefix}_{key}.json").read_text()))
            assert list(arr.shape) == [n] + trailing, (prefix, key)
        assert len(json.loads((set_dir / f"{prefix}_side.json").read_text())) == n
        assert sorted(p.name for p in (set_dir / prefix / "rgb").iterdir()) == [f"{i:08d}.jpg" for i in range(n)]
    from hmr.data import freihand
    from hmr.data.base import DatasetOptions

    K = np.asarray(json.loads((set_dir / "evaluation_K.json").read_text()))
    xyz = np.asarray(json.loads((set_dir / "evaluation_xyz.json").read_text()))
    mano = np.asarray(json.loads((set_dir / "evaluation_mano.json").read_text()))[:, 0]
    with np.load(set_dir / "evaluation_extra.npz") as extra:
        rotmat = extra["rotmat"]
    ds = freihand.FreiHANDDataset("synth_hand", set_dir, "test", DatasetOptions(), versions=(0,))
    assert len(ds) == 3
    for i in range(3):
        ann = ds.annotation(i)
        np.testing.assert_allclose(ann.pose, rotmat[i], atol=1e-5)
        np.testing.assert_allclose(ann.betas, mano[i, 48:58], atol=1e-6)
        uvw = xyz[i] @ K[i].T
        np.testing.assert_allclose(ann.keypoints_2d[:, :2], uvw[:, :2] / uvw[:, 2:], atol=1e-3)
        assert ann.image_path.is_file()


def test_same_seed_same_annotations_and_interrupted_runs_resume(tmp_path, smpl):
    spec = _spec("body", "r", seed=5)

    class Stop(Exception):
        pass

    def stop_after_first(task):
        raise Stop

    with pytest.raises(Stop):
        generate_set(spec, root=str(tmp_path / "a"), progress=False, contact_sheet=False, on_shard=stop_after_first)
    shards = sorted((tmp_path / "a" / "r" / "shards").glob("*.npz"))
    assert len(shards) == 1
    stamp = shards[0].stat().st_mtime_ns
    summary = generate_set(spec, root=str(tmp_path / "a"), progress=False, contact_sheet=False)
    assert shards[0].stat().st_mtime_ns == stamp  # the finished shard was not rewritten
    assert summary["time"]["reused_shards"] == 1
    generate_set(spec, root=str(tmp_path / "b"), progress=False, contact_sheet=False)
    for split in ("train", "val", "test"):
        with np.load(tmp_path / "a" / "r" / f"{split}.npz") as a, np.load(tmp_path / "b" / "r" / f"{split}.npz") as b:
            assert a.files == b.files
            for key in a.files:
                assert np.array_equal(a[key], b[key]), (split, key)
    img = "images/val/00000001.jpg"
    assert (tmp_path / "a" / "r" / img).read_bytes() == (tmp_path / "b" / "r" / img).read_bytes()
    other = generate_set(_spec("body", "r", seed=6), root=str(tmp_path / "c"), progress=False, contact_sheet=False)
    assert other["counts"] == summary["counts"]
    with np.load(tmp_path / "a" / "r" / "train.npz") as a, np.load(tmp_path / "c" / "r" / "train.npz") as c:
        assert not np.array_equal(a["pose"], c["pose"])
    with pytest.raises(ValueError, match="different settings"):
        generate_set(_spec("body", "r", seed=7), root=str(tmp_path / "a"), progress=False)


def _run_cli(*args):
    return subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic.py"), *args],
                          capture_output=True, text=True, cwd=str(REPO), timeout=300)


def _check_cli(tmp_path, body_set, workers):
    overrides = ["body.name=b"] + [f"body.{o}" for o in TINY_OVERRIDES["body"]]
    proc = _run_cli("--config", str(REPO / "configs/synthetic/default.yaml"), "--root", str(tmp_path), "--kind",
                    "body", "--workers", str(workers), "--seed", "0", "--no-progress", *overrides)
    assert proc.returncode == 0, proc.stderr
    assert "body set" in proc.stdout and f"{workers} workers" in proc.stdout
    for split in ("train", "val", "test"):
        with np.load(tmp_path / "b" / f"{split}.npz") as a, np.load(body_set[0] / f"{split}.npz") as b:
            for key in a.files:
                assert np.array_equal(a[key], b[key]), (split, key)
    assert (tmp_path / "b" / "contact_sheet.png").is_file()


def test_cli_matches_the_library(tmp_path, body_set):
    _check_cli(tmp_path, body_set, workers=1)


@pytest.mark.slow
def test_cli_with_two_workers_matches_the_library(tmp_path, body_set):
    _check_cli(tmp_path, body_set, workers=2)  # worker processes: same annotations as one process


def test_cli_reports_bad_configuration(tmp_path):
    proc = _run_cli("--root", str(tmp_path), "--kind", "body", "body.colour=3")
    assert proc.returncode == 2
    assert "unknown" in proc.stderr and "colour" in proc.stderr  # refused by the config loader, naming the key


def test_mirrored_left_hands_keep_the_principal_point_at_the_image_centre(mano):
    right, left = mano
    options = SceneOptions(image_sizes=((96, 128),), fov_deg=(30, 60), fill=(0.4, 0.9), occlusion_share=0.0,
                           truncation_share=0.0, left_share=1.0, blur_share=0.0)
    samples = HandSampler(right, left, options).generate(np.random.default_rng(2), 4)
    renderer = Renderer(128, 96, "torch")
    for s in samples:
        a = s.annotation
        assert a["is_left"]
        assert a["K"][0, 2] == 128 / 2 and a["K"][1, 2] == 96 / 2  # the camera model's w/2, h/2
        # the stored (mirrored) image is what the stored mesh looks like through the stored K, to the pixel
        again = renderer.render(a["verts"], right.faces.numpy(), a["K"])
        assert _iou(again.mask, s.person_mask) > 0.995
