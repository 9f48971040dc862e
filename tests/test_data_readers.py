"""Readers on tiny official-format files written here: SPIN/CLIFF npz, FreiHAND json, 3DPW pickles;
the registry, mixing and the error paths (missing layout, corrupt images, empty split)."""
import json
import os
import pickle

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from torch.utils.data import DataLoader, DistributedSampler

from hmr.body.joint_sets import COCO_18_NAMES, OPENPOSE_25_NAMES
from hmr.data import (DatasetLayoutError, EmptyDatasetError, MixedDataset, build_dataset, build_mixed_dataset,
                      dataset_spec, skipped_images)

CROP = [32, 24]


def _image(path, h=48, w=64, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def write_spin_set(folder, n=4, split="train", corrupt=(), full=True):
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        names.append(f"imgs/{split}_{i}.jpg")
        if i in corrupt:
            (folder / "imgs").mkdir(parents=True, exist_ok=True)
            (folder / names[-1]).write_bytes(b"not a jpeg at all")
        else:
            _image(folder / names[-1])
    arrays = dict(imgname=np.array(names), center=rng.uniform(20, 40, (n, 2)), scale=np.full(n, 0.2))
    if full:
        arrays.update(part=np.concatenate([rng.uniform(0, 60, (n, 24, 2)), np.ones((n, 24, 1))], -1),
                      S=np.concatenate([rng.normal(size=(n, 24, 3)), np.ones((n, 24, 1))], -1),
                      pose=rng.normal(scale=0.3, size=(n, 72)), shape=rng.normal(size=(n, 10)),
                      has_smpl=np.array([1, 0] * (n // 2) + [1] * (n % 2), dtype=np.float64),
                      openpose=rng.uniform(0, 60, (n, 25, 3)), gender=np.array(["m", "f"] * (n // 2) + ["m"] * (n % 2)))
    np.savez(folder / f"{split}.npz", **arrays)
    return arrays


def _cfg(tmp_path, **data):
    return {"data": {"root": str(tmp_path), "crop_size": CROP, **data}}


# ---- SPIN/CLIFF npz --------------------------------------------------------------------------------------
def test_spin_npz_items_follow_the_contract(tmp_path):
    arrays = write_spin_set(tmp_path / "synth_body", split="test")
    ds = build_dataset("synth_body", "test", _cfg(tmp_path))
    assert len(ds) == 4 and not ds.options.augment
    item = ds[1]
    shapes = {k: tuple(v.shape) for k, v in item.items()}
    assert shapes["img"] == (3, 32, 24) and shapes["keypoints_2d"] == (24, 3) and shapes["joints_3d"] == (24, 4)
    assert shapes["pose"] == (24, 3, 3) and shapes["openpose_2d"] == (25, 3) and shapes["bbox_info"] == (3,)
    np.testing.assert_allclose(item["keypoints_2d"], arrays["part"][1], atol=1e-4)
    np.testing.assert_allclose(item["joints_3d"], arrays["S"][1], atol=1e-5)
    np.testing.assert_allclose(item["pose"], Rotation.from_rotvec(arrays["pose"][1].reshape(24, 3)).as_matrix(),
                               atol=1e-6)
    assert item["img_size"].tolist() == [48, 64] and item["focal"].item() == pytest.approx(80.0)
    assert item["has_pose"] == 0 and item["gender"] == 1 and item["index"] == 1 and item["valid"] == 1
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["img"].shape == (4, 3, 32, 24)


def test_spin_npz_missing_optional_keys_are_zero_and_flagged(tmp_path):
    write_spin_set(tmp_path / "coco", full=False)
    item = build_dataset("coco", "train", _cfg(tmp_path), augment=False)[0]
    assert item["has_pose"] == 0 and item["has_3d"] == 0 and item["has_betas"] == 0 and item["gender"] == -1
    assert item["keypoints_2d"].abs().sum() == 0 and torch.equal(item["pose"], torch.eye(3).expand(24, 3, 3))


def test_spin_npz_bad_shapes_and_empty_split(tmp_path):
    folder = tmp_path / "mpii"
    folder.mkdir()
    np.savez(folder / "train.npz", imgname=np.array(["a.jpg"]), center=np.zeros((1, 3)), scale=np.ones(1))
    with pytest.raises(ValueError, match="'center' has shape"):
        build_dataset("mpii", "train", _cfg(tmp_path))
    np.savez(folder / "val.npz", imgname=np.array([], dtype=str), center=np.zeros((0, 2)), scale=np.zeros(0))
    with pytest.raises(EmptyDatasetError, match="no samples"):
        build_dataset("mpii", "val", _cfg(tmp_path))


def test_missing_dataset_names_the_expected_layout(tmp_path):
    for name in ("synth_body", "freihand", "pw3d", "h36m_p2"):
        with pytest.raises(DatasetLayoutError, match="Expected layout"):
            build_dataset(name, "test", _cfg(tmp_path))
    with pytest.raises(KeyError, match="unknown dataset") as err:
        build_dataset("nope", "train", _cfg(tmp_path))
    assert str(err.value).startswith("unknown dataset 'nope'")  # no stray quotes around the message
    with pytest.raises(ValueError, match="data.sets.spin_npz.npz"):
        build_dataset("spin_npz", "train", _cfg(tmp_path))
    with pytest.raises(ValueError, match="split"):
        build_dataset("synth_body", "testing", _cfg(tmp_path))


def test_user_defined_spin_npz_set(tmp_path):
    write_spin_set(tmp_path / "mine", split="train")
    cfg = _cfg(tmp_path, sets={"cliff_coco": {"type": "spin_npz", "npz": "mine/{split}.npz", "images": "mine"}})
    assert len(build_dataset("cliff_coco", "train", cfg)) == 4
    assert dataset_spec("synth_hand", cfg)["type"] == "freihand"


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    write_spin_set(tmp_path / "synth_body", split="train", corrupt=(1, 2))
    train = build_dataset("synth_body", "train", _cfg(tmp_path))
    assert train[1]["index"] == 3 and train.skipped == 2              # substituted by the next readable one
    evaluation = build_dataset("synth_body", "train", _cfg(tmp_path), augment=False)
    evaluation.options.on_bad_image = "flag"
    item = evaluation[2]
    assert item["valid"] == 0 and item["index"] == 2 and evaluation.skipped == 1
    train.reset_skipped()
    assert skipped_images(train) == 0


def test_skips_are_counted_across_dataloader_workers(tmp_path):
    write_spin_set(tmp_path / "synth_body", n=6, split="test", corrupt=(0, 3, 5))
    ds = build_dataset("synth_body", "test", _cfg(tmp_path))
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert sum(int((b["valid"] == 0).sum()) for b in batches) == 3
    assert skipped_images(ds) == 3


def test_all_images_unreadable_raises_a_clear_error(tmp_path):
    write_spin_set(tmp_path / "synth_body", n=2, corrupt=(0, 1))
    with pytest.raises(RuntimeError, match="consecutive unreadable images"):
        build_dataset("synth_body", "train", _cfg(tmp_path))[0]


# ---- FreiHAND --------------------------------------------------------------------------------------------
def write_freihand(root, n=2, prefix="training", versions=2, mano=True, verts=True):
    rng = np.random.default_rng(1)
    K = np.array([[[200.0, 0, 30], [0, 200, 34], [0, 0, 1]]] * n)
    xyz = rng.normal(scale=0.03, size=(n, 21, 3)) + np.array([0, 0, 0.6])
    data = {"K": K, "xyz": xyz, "scale": np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1)}
    if mano:
        data["mano"] = np.concatenate([rng.normal(scale=0.2, size=(n, 1, 48)), rng.normal(size=(n, 1, 13))], -1)
    if verts:
        data["verts"] = rng.normal(scale=0.03, size=(n, 778, 3)) + np.array([0, 0, 0.6])
    root.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        (root / f"{prefix}_{key}.json").write_text(json.dumps(value.tolist()))
    for idx in range(n * versions):
        _image(root / prefix / "rgb" / f"{idx:08d}.jpg", 64, 64)
    return data


def test_freihand_training_and_evaluation(tmp_path):
    train = write_freihand(tmp_path / "FreiHAND")
    evaluation = write_freihand(tmp_path / "FreiHAND", prefix="evaluation", versions=1)
    hands_mean = np.random.default_rng(2).normal(size=45)
    np.save(tmp_path / "mean.npy", hands_mean)
    cfg = _cfg(tmp_path, sets={"freihand": {"versions": [0, 1], "hands_mean": "mean.npy"}})
    ds = build_dataset("freihand", "train", cfg, augment=False)
    assert len(ds) == 4 and ds.kind == "hand"
    item = ds[3]                                 # version 1 of annotation 1 -> image 00000003.jpg
    assert ds.annotation(3).image_path.name == "00000003.jpg"
    uvw = train["xyz"][1] @ train["K"][1].T
    np.testing.assert_allclose(item["keypoints_2d"][:, :2], uvw[:, :2] / uvw[:, 2:], atol=1e-3)
    np.testing.assert_allclose(item["joints_3d"][:, :3], train["xyz"][1] - train["xyz"][1][0], atol=1e-6)
    aa = train["mano"][1, 0, :48].reshape(16, 3).copy()
    aa[1:] += hands_mean.reshape(15, 3)
    np.testing.assert_allclose(item["pose"], Rotation.from_rotvec(aa).as_matrix(), atol=1e-5)
    np.testing.assert_allclose(item["betas"], train["mano"][1, 0, 48:58], atol=1e-6)
    assert item["has_vertices"] == 0 and item["focal"] == pytest.approx(200.0)   # training verts not loaded
    test = build_dataset("freihand", "test", _cfg(tmp_path, sets={"freihand": {"hands_mean": "mean.npy"}}))
    t_item = test[0]
    assert len(test) == 2 and t_item["has_vertices"] == 1 and t_item["img"].shape == (3, 32, 24)
    np.testing.assert_allclose(t_item["vertices"], evaluation["verts"][0] - evaluation["xyz"][0][0], atol=1e-6)
    # hands are never flipped, even when the config asks for it
    flip_cfg = _cfg(tmp_path, augment={"flip_prob": 1.0, "rot_prob": 0.0, "scale_factor": 0.0})
    flip_cfg["data"]["sets"] = cfg["data"]["sets"]
    aug_item = build_dataset("freihand", "train", flip_cfg)[0]
    np.testing.assert_allclose(aug_item["keypoints_2d"], build_dataset("freihand", "train", cfg,
                                                                       augment=False)[0]["keypoints_2d"], atol=1e-4)


def test_freihand_poses_need_an_explicit_hands_mean_choice(tmp_path):
    train = write_freihand(tmp_path / "FreiHAND", versions=1)
    with pytest.raises(ValueError) as err:  # relative poses without hands_mean would train the wrong rotations
        build_dataset("freihand", "train", _cfg(tmp_path))
    msg = str(err.value)
    assert "training_mano.json" in msg and "data.sets.freihand.hands_mean" in msg and "flat" in msg
    flat = build_dataset("freihand", "train", _cfg(tmp_path, sets={"freihand": {"hands_mean": "flat"}}),
                         augment=False)
    aa = train["mano"][0, 0, :48].reshape(16, 3)
    np.testing.assert_allclose(flat[0]["pose"], Rotation.from_rotvec(aa).as_matrix(), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):  # the official model's mean, when present
        build_dataset("freihand", "train", _cfg(tmp_path, sets={"freihand": {"hands_mean": "mano-right"}}))
    with pytest.raises(ValueError, match="45"):
        build_dataset("freihand", "train", _cfg(tmp_path, sets={"freihand": {"hands_mean": [0.0, 1.0]}}))
    write_freihand(tmp_path / "keypoints_only", versions=1, mano=False)  # no poses: nothing to choose
    spec = {"type": "freihand", "root": "keypoints_only"}
    assert build_dataset("kp", "train", _cfg(tmp_path, sets={"kp": spec}))[0]["has_pose"] == 0


def test_freihand_inconsistent_files(tmp_path):
    write_freihand(tmp_path / "synth_hand", n=2)
    (tmp_path / "synth_hand" / "training_xyz.json").write_text(json.dumps(np.zeros((3, 21, 3)).tolist()))
    with pytest.raises(ValueError, match="3 entries"):
        build_dataset("synth_hand", "train", _cfg(tmp_path))


# ---- 3DPW ------------------------------------------------------------------------------------------------
def write_3dpw(root, split="test", name="courtyard_test_00", frames=3):
    rng = np.random.default_rng(3)
    cam = np.tile(np.eye(4), (frames, 1, 1))
    cam[:, :3, :3] = Rotation.random(frames, random_state=4).as_matrix()
    poses2d = [np.concatenate([rng.uniform(100, 300, (frames, 2, 18)), np.ones((frames, 1, 18))], 1)
               for _ in range(2)]
    poses2d[1][2, 2, :] = 0                       # actor 1, frame 2: no confident keypoint -> dropped
    seq = {"sequence": name, "genders": ["m", "f"], "betas": [rng.normal(size=300), rng.normal(size=10)],
           "poses": [rng.normal(scale=0.3, size=(frames, 72)) for _ in range(2)],
           "trans": [rng.normal(size=(frames, 3)) for _ in range(2)], "poses2d": poses2d,
           "jointPositions": [rng.normal(size=(frames, 72)) for _ in range(2)], "cam_poses": cam,
           "campose_valid": [np.array([1, 0, 1]), np.array([1, 1, 1])], "cam_intrinsics": np.eye(3),
           "img_frame_ids": np.arange(frames) + 10}
    (root / "sequenceFiles" / split).mkdir(parents=True)
    with open(root / "sequenceFiles" / split / f"{name}.pkl", "wb") as handle:
        pickle.dump(seq, handle, protocol=2)
    for f in range(frames):
        _image(root / "imageFiles" / name / f"image_{f + 10:05d}.jpg", 400, 300)
    return seq


def test_3dpw_reader(tmp_path):
    seq = write_3dpw(tmp_path / "3DPW")
    ds = build_dataset("pw3d", "test", _cfg(tmp_path))
    assert len(ds) == 4 and ds.dropped_frames == 1            # (2 valid + 3 valid) frames, one dropped
    assert ds.sample_info(1) == {"sequence": "courtyard_test_00", "frame": 12, "actor": 0}
    item = ds[1]
    R_root = Rotation.from_rotvec(seq["poses"][0][2, :3]).as_matrix()
    np.testing.assert_allclose(item["pose"][0], seq["cam_poses"][2, :3, :3] @ R_root, atol=1e-5)
    np.testing.assert_allclose(item["betas"], seq["betas"][0][:10], atol=1e-6)
    kp = seq["poses2d"][0][2].T
    op_idx = [OPENPOSE_25_NAMES.index(n) for n in COCO_18_NAMES]
    np.testing.assert_allclose(item["openpose_2d"][op_idx], kp, atol=1e-3)
    lo, hi = kp[:, :2].min(0), kp[:, :2].max(0)
    np.testing.assert_allclose(item["center"], (lo + hi) / 2, atol=1e-3)
    assert item["scale"].item() == pytest.approx(1.2 * (hi - lo).max() / 200, rel=1e-6)
    assert item["gender"] == 0 and ds[3]["gender"] == 1 and item["has_3d"] == 0 and item["has_pose"] == 1
    assert item["img_size"].tolist() == [400, 300]


def test_3dpw_refuses_unsafe_pickles_and_reports_missing_keys(tmp_path):
    folder = tmp_path / "3DPW" / "sequenceFiles" / "test"
    folder.mkdir(parents=True)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo unsafe",))

    (folder / "bad.pkl").write_bytes(pickle.dumps({"sequence": Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        build_dataset("pw3d", "test", _cfg(tmp_path))
    (folder / "bad.pkl").write_bytes(pickle.dumps({"sequence": "x"}, protocol=2))
    with pytest.raises(ValueError, match="missing keys"):
        build_dataset("pw3d", "test", _cfg(tmp_path))
    (folder / "bad.pkl").unlink()
    with pytest.raises(EmptyDatasetError):
        build_dataset("pw3d", "test", _cfg(tmp_path))


# ---- mixing ----------------------------------------------------------------------------------------------
def test_mixed_dataset_ratios_epochs_and_distributed_sampler(tmp_path):
    write_spin_set(tmp_path / "coco", n=4)
    write_spin_set(tmp_path / "mpii", n=6)
    cfg = _cfg(tmp_path, train={"coco": 0.25, "mpii": 0.75}, epoch_length=20)
    mixed = build_mixed_dataset(cfg)
    assert len(mixed) == 20 and mixed.segment_sizes() == [5, 15]
    sources = [mixed.locate(i)[0] for i in range(20)]
    assert sources.count(0) == 5
    seen_epoch0 = {mixed.locate(i) for i in range(20)}
    assert {j for k, j in seen_epoch0 if k == 1} == set(range(6))            # every mpii sample used
    mixed.set_epoch(1)
    first_epoch1 = [mixed.locate(i)[1] for i in range(5)]
    mixed.set_epoch(0)
    assert first_epoch1 != [mixed.locate(i)[1] for i in range(5)]
    parts = [list(DistributedSampler(mixed, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == list(range(20))
    assert mixed[7]["source"] == 1
    with pytest.raises(ValueError, match="kinds"):
        write_freihand(tmp_path / "FreiHAND", n=1, versions=4)
        hands = build_dataset("freihand", "train", _cfg(tmp_path, sets={"freihand": {"hands_mean": "flat"}}))
        MixedDataset([mixed.datasets[0], hands], [1, 1])
    with pytest.raises(ValueError, match="ratios"):
        MixedDataset([mixed.datasets[0]], [1, 2])
    with pytest.raises(ValueError, match="data.train"):
        build_mixed_dataset(_cfg(tmp_path))


def test_synthetic_hand_extras_validation_prefix_and_version_detection(tmp_path):
    root = tmp_path / "synth_hand"
    write_freihand(root, n=2, prefix="training", versions=1)
    write_freihand(root, n=2, prefix="validation", versions=1)
    rotmat = Rotation.random(2 * 16, random_state=5).as_matrix().reshape(2, 16, 3, 3)
    np.savez(root / "validation_extra.npz", rotmat=rotmat)
    train = build_dataset("synth_hand", "train", _cfg(tmp_path))
    assert train.versions == (0,) and len(train) == 2          # only one image version on disk
    val = build_dataset("synth_hand", "val", {"root": str(tmp_path), "crop_size": CROP})   # the data section
    assert val.image_dir.parent.name == "validation" and val[1]["has_vertices"] == 1
    np.testing.assert_allclose(val[1]["pose"], rotmat[1], atol=1e-6)

