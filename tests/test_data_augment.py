"""Crop/augment consistency: flips are involutions, rotated/flipped keypoints equal the projection of the
transformed 3D joints, and image pixels move with the keypoints."""
import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmr.body.joint_sets import OPENPOSE_25, SMPL_24, SPIN_24
from hmr.data import augment as aug
from hmr.data import build_dataset
from hmr.data.crop import (apply_affine, compose_affine, crop_matrix, denormalize_image, inplane_transform,
                           normalize_image)
from hmr.geometry import bbox_info, camera_matrix, perspective_projection

H, W, F = 120, 160, 150.0


def _project(points, focal=F, h=H, w=W):
    K = camera_matrix(torch.tensor([focal], dtype=torch.float64), torch.tensor([[h, w]], dtype=torch.float64))[0]
    return perspective_projection(torch.as_tensor(points, dtype=torch.float64), K).numpy()


def test_flips_are_involutions_and_pose_mirroring_matches_axis_angle_rule():
    rng = np.random.default_rng(0)
    aa = rng.normal(scale=0.5, size=(24, 3))
    pose = Rotation.from_rotvec(aa).as_matrix()
    flipped = aug.flip_pose(pose, SMPL_24.flip)
    np.testing.assert_allclose(aug.flip_pose(flipped, SMPL_24.flip), pose, atol=1e-12)
    expected = Rotation.from_rotvec(aa[list(SMPL_24.flip)] * np.array([1, -1, -1])).as_matrix()
    np.testing.assert_allclose(flipped, expected, atol=1e-12)
    kp = rng.normal(size=(24, 3))
    np.testing.assert_array_equal(aug.flip_points(aug.flip_points(kp, SPIN_24.flip), SPIN_24.flip), kp)
    with pytest.raises(ValueError, match="permutation"):
        aug.flip_points(kp, OPENPOSE_25.flip)


@pytest.mark.parametrize("rot,flip", [(0.0, True), (35.0, False), (-50.0, True)])
def test_transformed_keypoints_equal_projection_of_transformed_joints(rot, flip):
    rng = np.random.default_rng(1)
    joints = rng.normal(scale=0.3, size=(24, 3)) + np.array([0.2, -0.1, 4.0])
    full2d, lin3 = inplane_transform(rot, flip, (W / 2, H / 2))
    kp = apply_affine(_project(joints[None])[0], full2d)
    np.testing.assert_allclose(_project(aug.transform_points_3d(joints, lin3)[None])[0], kp, atol=1e-9)
    # the 3D map is the rotation about the optical axis (times the mirror for a flip)
    mirror = np.diag([-1.0, 1, 1]) if flip else np.eye(3)
    np.testing.assert_allclose(lin3, aug.rotation_about_optical_axis(rot) @ mirror, atol=1e-12)


def _write_scene(tmp_path, n=3):
    """A SPIN-style npz set whose 2D keypoints are the exact projections of (S + transl), drawn as discs."""
    rng = np.random.default_rng(2)
    root = tmp_path / "synth_body"
    (root / "images").mkdir(parents=True)
    S = np.concatenate([rng.normal(scale=0.25, size=(n, 24, 3)), np.ones((n, 24, 1))], -1)
    S[..., :3] -= S[:, :1, :3]
    transl = np.stack([rng.normal(0, 0.1, n), rng.normal(0, 0.1, n), np.full(n, 4.0)], 1)
    part = np.zeros((n, 24, 3))
    names = []
    for i in range(n):
        part[i, :, :2] = _project(S[i:i + 1, :, :3] + transl[i])[0]
        part[i, :, 2] = 1
        img = np.zeros((H, W, 3), np.uint8)
        for x, y in part[i, :, :2]:
            cv2.circle(img, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1)
        names.append(f"images/{i:03d}.png")
        cv2.imwrite(str(root / names[-1]), img)
    lo, hi = part[..., :2].min(1), part[..., :2].max(1)
    np.savez(root / "train.npz", imgname=np.array(names), center=(lo + hi) / 2, scale=1.3 * (hi - lo).max(1) / 200,
             part=part, S=S, pose=rng.normal(scale=0.3, size=(n, 72)), shape=rng.normal(size=(n, 10)),
             has_smpl=np.ones(n), focal_l=np.full(n, F))
    cfg = {"data": {"root": str(tmp_path), "crop_size": [64, 48],
                    "augment": {"rot_prob": 1.0, "flip_prob": 0.5, "trans_factor": 0.05, "color_factor": 0.0}}}
    return cfg, transl


def test_dataset_item_is_geometrically_consistent_under_fixed_augmentation(tmp_path, monkeypatch):
    cfg, transl = _write_scene(tmp_path)
    plain = build_dataset("synth_body", "train", cfg, augment=False)
    params = aug.AugmentParams(flip=True, rot_deg=28.0, scale_mult=1.1, trans=(0.03, -0.02))
    monkeypatch.setattr(aug, "sample_params", lambda *a, **k: params)
    ds = build_dataset("synth_body", "train", cfg, augment=True)
    _, lin3 = inplane_transform(params.rot_deg, params.flip, (W / 2, H / 2))
    for i in range(len(ds)):
        item, ref = ds[i], plain[i]
        t = lin3 @ transl[i]
        proj = _project(item["joints_3d"][None, :, :3].double().numpy() + t)[0]
        np.testing.assert_allclose(proj, item["keypoints_2d"][:, :2].numpy(), atol=1e-3)
        expected_root = aug.rotation_about_optical_axis(params.rot_deg) @ np.diag([-1.0, 1, 1]) @ \
            ref["pose"][0].double().numpy() @ np.diag([-1.0, 1, 1])
        np.testing.assert_allclose(item["pose"][0].numpy(), expected_root, atol=1e-5)
        torch.testing.assert_close(item["bbox_info"], bbox_info(item["center"][None], item["scale"][None],
                                                                item["focal"][None], item["img_size"][None])[0])
        torch.testing.assert_close(item["scale"], ref["scale"] * params.scale_mult)


def test_image_pixels_follow_the_keypoints_under_random_augmentation(tmp_path):
    cfg, _ = _write_scene(tmp_path)
    ds = build_dataset("synth_body", "train", cfg)
    torch.manual_seed(3)
    checked = 0
    for _ in range(4):
        for i in range(len(ds)):
            item = ds[i]
            crop = denormalize_image(item["img"]).max(axis=2)
            to_crop = crop_matrix(item["center"].double().numpy(), float(item["scale"]), (64, 48))
            for x, y in apply_affine(item["keypoints_2d"][:, :2].double().numpy(), to_crop):
                xi, yi = int(round(x)), int(round(y))
                if 1 <= xi < 47 and 1 <= yi < 63:
                    assert crop[yi - 1:yi + 2, xi - 1:xi + 2].max() > 100
                    checked += 1
    assert checked > 50


def test_colour_jitter_occlusion_and_normalisation():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(aug.color_jitter(img, (1.0, 1.0, 1.0)), img)
    jittered = aug.color_jitter(img, (0.5, 1.0, 2.0))
    np.testing.assert_array_equal(jittered[..., 1], img[..., 1])
    assert jittered.dtype == np.uint8 and jittered[..., 0].max() <= 128
    occluded = aug.occlude(img, (0.5, 0.5, 0.25, 0.25), rng)
    changed = np.any(occluded != img, axis=2)
    assert not changed[:10].any() and not changed[:, :15].any()
    np.testing.assert_array_equal(denormalize_image(normalize_image(img)), img)
    with pytest.raises(ValueError, match="unknown data.augment keys"):
        aug.AugmentConfig.from_mapping({"rotation": 3})
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    cfg = aug.AugmentConfig(occlusion_prob=1.0)
    assert aug.sample_params(cfg, a) == aug.sample_params(cfg, b)
    assert not aug.sample_params(aug.AugmentConfig(flip_prob=1.0), a, allow_flip=False).flip


def test_compose_affine_applies_inner_first():
    A, B = np.random.default_rng(6).normal(size=(2, 2, 3))
    p = np.random.default_rng(7).normal(size=(5, 2))
    np.testing.assert_allclose(apply_affine(p, compose_affine(A, B)), apply_affine(apply_affine(p, B), A))
