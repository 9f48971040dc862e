"""Synthetic-data building blocks without rendering: pose priors (checked through the model's forward
kinematics), cameras, framing, backgrounds, configuration errors."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmr.data.synthetic import appearance, pose_prior, scene
from hmr.data.synthetic.generator import SetSpec
from hmr.data.synthetic.samples import SceneOptions, matrix_to_axis_angle


@pytest.fixture(scope="module")
def mano(mano_right):
    return mano_right


def test_rodrigues_matches_scipy():
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(50, 3))
    angles = rng.uniform(-180, 180, 50)
    unit = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    expected = Rotation.from_rotvec(unit * np.deg2rad(angles)[:, None]).as_matrix()
    np.testing.assert_allclose(pose_prior.rodrigues(axes, angles), expected, atol=1e-12)


def test_axis_angle_conversion_matches_scipy():
    R = Rotation.random(20, random_state=1).as_matrix()
    np.testing.assert_allclose(matrix_to_axis_angle(R), Rotation.from_matrix(R).as_rotvec(), atol=1e-7)


def _pose_one(model, joint, angles):
    """FK joints with one joint at absolute anatomical angles (flex, abduct, twist), the others at rest."""
    prior = pose_prior.BodyPosePrior(model().joints[0].double().numpy())
    a = prior.offset.copy()[None]
    a[0, joint - 1] = angles
    R = prior.rotations(a)
    with torch.no_grad():
        return model(body_pose=torch.from_numpy(R).float()).joints[0].numpy()


def test_body_prior_axes_bend_limbs_anatomically(smpl):
    names = pose_prior.smpl_joint_names()
    j = {n: i for i, n in enumerate(names)}
    rest = smpl().joints[0].numpy()
    dist = lambda x, a, b: np.linalg.norm(x[j[a]] - x[j[b]])  # noqa: E731
    knee = _pose_one(smpl, j["l_knee"], [90, 0, 0])
    assert knee[j["l_ankle"], 2] < rest[j["l_ankle"], 2] - 0.2  # shin swings backwards (-z)
    hip = _pose_one(smpl, j["r_hip"], [90, 0, 0])
    assert hip[j["r_knee"], 2] > rest[j["r_knee"], 2] + 0.2  # thigh swings forwards (+z)
    straight = _pose_one(smpl, j["l_elbow"], [0, 0, 0])
    bent = _pose_one(smpl, j["l_elbow"], [120, 0, 0])
    upper, fore = dist(rest, "l_shoulder", "l_elbow"), dist(rest, "l_elbow", "l_wrist")
    assert abs(dist(straight, "l_shoulder", "l_wrist") - (upper + fore)) < 0.01  # 0° = straight arm
    law_of_cosines = np.sqrt(upper ** 2 + fore ** 2 - 2 * upper * fore * np.cos(np.deg2rad(180 - 120)))
    assert abs(dist(bent, "l_shoulder", "l_wrist") - law_of_cosines) < 0.01  # 120° bend
    assert bent[j["l_wrist"], 2] > straight[j["l_wrist"], 2] + 0.1  # the forearm comes forwards
    spine = _pose_one(smpl, j["spine1"], [30, 0, 0])
    assert spine[j["head"], 2] > rest[j["head"], 2] + 0.1  # bending forwards
    # shoulder abduction is the absolute elevation: 90° puts the elbow at shoulder height, 10° near the hip
    up = _pose_one(smpl, j["l_shoulder"], [0, 90, 0])
    assert abs(up[j["l_elbow"], 1] - up[j["l_shoulder"], 1]) < 0.02
    down = _pose_one(smpl, j["l_shoulder"], [0, 10, 0])
    assert abs(down[j["l_elbow"], 0] - down[j["l_shoulder"], 0]) < 0.06


def test_body_prior_samples_are_rotations_within_limits_and_deterministic(smpl):
    prior = pose_prior.BodyPosePrior(smpl().joints[0].double().numpy())
    R, kinds = prior.sample(np.random.default_rng(3), 600)
    R2, kinds2 = prior.sample(np.random.default_rng(3), 600)
    assert np.array_equal(R, R2) and np.array_equal(kinds, kinds2)
    assert R.shape == (600, 23, 3, 3)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    freq = np.bincount(kinds, minlength=len(pose_prior.BODY_ARCHETYPES)) / len(kinds)
    np.testing.assert_allclose(freq, pose_prior.BODY_ARCHETYPE_WEIGHTS, atol=0.05)
    # knee flexion (angle of the knee rotation) never exceeds its 145° limit (+ rest bend, cross-axis terms)
    knee_angle = np.degrees(np.arccos(np.clip((np.trace(R[:, 3], axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    assert knee_angle.max() < 150 + abs(prior.offset[3, 0])
    with pytest.raises(ValueError, match="24 SMPL rest joints"):
        pose_prior.BodyPosePrior(np.zeros((16, 3)))


def test_walking_couples_left_and_right(smpl):
    prior = pose_prior.BodyPosePrior(smpl().joints[0].double().numpy())
    weights = [0, 1, 0, 0, 0, 0]  # walking only
    R, _ = prior.sample(np.random.default_rng(0), 300, weights)
    # signed hip flexion: component of the rotation vector along the hip's flexion axis
    aa = matrix_to_axis_angle(R)
    left = aa[:, 0] @ prior.axes.axes[0, 0]
    right = aa[:, 1] @ prior.axes.axes[1, 0]
    assert np.corrcoef(left, right)[0, 1] < -0.7


def test_hand_prior_curls_fingers_towards_the_palm(mano):
    out = mano()
    kp_rest = mano.keypoints(out.vertices, out.joints, "freihand21")[0].double().numpy()
    rest = out.joints[0].double().numpy()
    prior = pose_prior.HandPosePrior(rest, kp_rest[[4, 8, 12, 16, 20]])
    normal = pose_prior.palm_normal(rest)
    # the model's relaxed rest hand curls its fingertips to the palm side: the normal's sign agrees
    assert ((kp_rest[[8, 12, 16, 20]] - rest[0]) @ normal).min() > 0.005

    def keypoints(R):
        with torch.no_grad():
            o = mano(hand_pose=torch.from_numpy(R).float())
            return mano.keypoints(o.vertices, o.joints, "freihand21").double().numpy()

    a = np.zeros((1, 15, 3))
    a[0, 0, 0] = 45  # index MCP flexion
    moved = keypoints(prior.axes.compose(a))[0, 8] - kp_rest[8]
    assert moved @ normal > 0.02  # the index tip moves towards the palm side
    fist, _ = prior.sample(np.random.default_rng(0), 50, [0, 0, 1, 0, 0, 0, 0])
    flat, _ = prior.sample(np.random.default_rng(0), 50, [1, 0, 0, 0, 0, 0, 0])
    tip_dist = lambda kp: np.linalg.norm(kp[:, [8, 12, 16, 20]] - kp[:, :1], axis=-1).mean()  # noqa: E731
    assert tip_dist(keypoints(fist)) < 0.75 * tip_dist(keypoints(flat))  # a fist brings the tips to the wrist
    np.testing.assert_allclose(np.linalg.det(fist), 1.0, atol=1e-9)


def test_random_rotation_is_uniform():
    rng = np.random.default_rng(0)
    R = np.stack([scene.random_rotation(rng) for _ in range(4000)])
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    assert np.abs(R.mean(0)).max() < 0.05  # Haar measure: E[R] = 0


def test_intrinsics_put_the_fov_edge_on_the_border():
    K = scene.intrinsics_from_fov(320, 240, 60.0)
    p = np.array([np.tan(np.deg2rad(30.0)), 0.0, 1.0])
    u = (K @ p)[0]
    assert abs(u - 320.0) < 1e-9
    assert K[0, 2] == 160 and K[1, 2] == 120
    with pytest.raises(ValueError, match="field of view"):
        scene.intrinsics_from_fov(10, 10, 0.1)


@pytest.mark.parametrize("truncate", [False, True])
def test_frame_mesh_reaches_the_fill_and_stays_inside_unless_truncated(truncate):
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 3)) * [0.2, 0.8, 0.15]
    for trial in range(20):
        K = scene.intrinsics_from_fov(256, 192, rng.uniform(40, 80))
        fill = rng.uniform(0.3, 0.9)
        f = scene.frame_mesh(pts, K, 192, 256, fill, rng, truncate)
        box = scene.projected_box(pts + f.transl, K)
        size = box[2:] - box[:2]
        assert abs(max(size[0] / 192, size[1] / 256) - fill) < 0.1 * fill
        inside = np.prod(np.clip(box[2:], 0, [192, 256]) - np.clip(box[:2], 0, [192, 256])) / np.prod(size)
        assert (0.5 < inside < 0.95) if truncate else inside > 0.97
    with pytest.raises(ValueError, match="fill"):
        scene.frame_mesh(pts, K, 192, 256, 0.0, rng, False)


def test_backgrounds_are_textured_and_deterministic(tmp_path):
    imgs = [appearance.random_background(np.random.default_rng(s), 96, 128) for s in range(20)]
    again = appearance.random_background(np.random.default_rng(7), 96, 128)
    assert np.array_equal(imgs[7], again)
    assert all(im.shape == (96, 128, 3) and im.dtype == np.uint8 for im in imgs)
    assert np.median([im.std() for im in imgs]) > 10  # not flat
    with pytest.raises(FileNotFoundError, match="background folder"):
        appearance.random_background(np.random.default_rng(0), 8, 8, str(tmp_path / "missing"), 1.0)
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((50, 60, 3), 200, np.uint8))
    user = appearance.random_background(np.random.default_rng(0), 40, 40, str(tmp_path), 1.0)
    assert (user == 200).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(occlusion_share=1.5), "occlusion_share"),
    (dict(fov_deg=(80, 40)), "fov_deg"),
    (dict(image_sizes=((8, 8),)), "image_sizes"),
])
def test_scene_options_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SceneOptions(**kwargs)


def test_set_spec_from_config_and_errors():
    spec = SetSpec.from_config("body", {"name": "b", "splits": {"train": 3}, "fov_deg": [50, 60],
                                        "image_sizes": [[64, 48]]}, seed=4)
    assert spec.seed == 4 and spec.scene.fov_deg == (50, 60) and spec.scene.image_sizes == ((64, 48),)
    with pytest.raises(ValueError, match="unknown body settings"):
        SetSpec.from_config("body", {"name": "b", "splits": {}, "colour": 1})
    with pytest.raises(ValueError, match="unknown splits"):
        SetSpec(kind="body", name="b", splits={"training": 3})
    with pytest.raises(ValueError, match="kind"):
        SetSpec(kind="face", name="b", splits={})
    with pytest.raises(ValueError, match="plain folder name"):
        SetSpec(kind="body", name="../x", splits={})


def test_body_regions_put_a_face_in_front_and_hair_behind(smpl):
    """Face features sit on the front of the head in anatomical order, mirror-symmetric; hair covers the back."""
    with torch.no_grad():
        rest = smpl()
    v = rest.vertices[0].double().numpy()
    head_joint = rest.joints[0, 15].double().numpy()
    dominant = smpl.weights.argmax(1).numpy()
    regions = appearance.body_regions(v, dominant)
    head = dominant == 15
    feature = {name: regions == label for name, label in (("hair", appearance.HAIR), ("eyes", appearance.EYES),
                                                          ("brows", appearance.BROWS), ("lips", appearance.LIPS))}
    for name, mask in feature.items():
        assert mask.any() and not (mask & ~head).any(), name
    for name in ("eyes", "brows", "lips"):
        assert (v[feature[name], 2] > head_joint[2]).all(), f"{name} not on the face"
    eyes = v[feature["eyes"]]
    left, right = eyes[eyes[:, 0] > 0], eyes[eyes[:, 0] < 0]
    assert len(left) and len(right)
    assert abs(left[:, 0].mean() + right[:, 0].mean()) < 0.01  # mirror images across the midline
    height = {name: v[mask, 1].mean() for name, mask in feature.items()}
    assert height["lips"] < height["eyes"] < height["brows"]
    assert v[feature["hair"], 1].max() == v[head, 1].max()  # the crown
    assert regions[np.flatnonzero(head)[np.argmin(v[head, 2])]] == appearance.HAIR  # back of the head
    # clothes keep their joints: a thigh vertex wears the trousers
    assert (regions[dominant == 1] == appearance.PANTS).all()


def test_body_colors_are_valid_and_sometimes_bald(smpl):
    dominant = smpl.weights.argmax(1).numpy()
    with torch.no_grad():
        regions = appearance.body_regions(smpl().vertices[0].double().numpy(), dominant)
    rng = np.random.default_rng(0)
    bald = 0
    for _ in range(300):
        colors = appearance.body_colors(rng, regions)
        assert colors.shape == (len(regions), 3) and colors.dtype == np.float32
        assert colors.min() >= 0 and colors.max() <= 1
        skin = np.median(colors[regions == appearance.SKIN], axis=0)
        bald += np.abs(np.median(colors[regions == appearance.HAIR], axis=0) - skin).max() < 0.02
    assert 5 <= bald <= 50  # 8 % expected
    again = appearance.body_colors(np.random.default_rng(3), regions)
    assert np.array_equal(again, appearance.body_colors(np.random.default_rng(3), regions))
