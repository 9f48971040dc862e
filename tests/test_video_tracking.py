"""Tracking identities across frames and smoothing tracks on SO(3)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from hmr.demo.boxes import Detection
from hmr.video.smoothing import (SmoothingConfig, TrackSeries, continuous_quaternions, one_euro_rotations,
                                 savgol_rotations, smooth_track)
from hmr.video.tracking import Tracker, TrackerConfig, box_iou


def _geodesic_deg(a, b):
    return np.degrees(np.linalg.norm(Rotation.from_matrix(np.swapaxes(a, -1, -2) @ b).as_rotvec(), axis=-1))


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0


def _crossing(frames=60, overlap_frames=None):
    """Two people walking towards each other along the same line: their boxes overlap mid-way."""
    out = []
    for t in range(frames):
        a = (10 + 5 * t, 50, 60, 150)
        b = (310 - 5 * t, 55, 60, 150)
        out.append([Detection(a), Detection(b)] if t % 2 else [Detection(b), Detection(a)])  # detector order varies
    return out


def test_crossing_people_keep_their_identities():
    tracker = Tracker()
    first = None
    for t, dets in enumerate(_crossing()):
        ids = tracker.update(dets, t)
        by_x_start = {}
        for det, i in zip(dets, ids):
            # the person who started left has a box moving right: identify by the box's y (50 vs 55)
            by_x_start[det.bbox[1]] = i
        if first is None:
            first = by_x_start
        assert by_x_start == first, (t, by_x_start, first)
    assert tracker.next_id == 3


def test_tracks_survive_short_misses_and_end_after_long_ones():
    tracker = Tracker(TrackerConfig(max_misses=3))
    box = lambda t: Detection((10 + 4 * t, 20, 50, 100))  # noqa: E731
    assert tracker.update([box(0)], 0) == [1]
    assert tracker.update([box(1)], 1) == [1]
    for t in (2, 3, 4):
        assert tracker.update([], t) == []
    assert tracker.update([box(5)], 5) == [1], "the constant-velocity prediction bridges the gap"
    for t in range(6, 11):
        tracker.update([], t)
    assert tracker.update([box(11)], 11) == [2]


def test_hands_of_different_sides_never_share_a_track():
    tracker = Tracker()
    assert tracker.update([Detection((10, 10, 40, 40), side="left")], 0) == [1]
    assert tracker.update([Detection((11, 10, 40, 40), side="right")], 1) == [2]
    assert tracker.update([Detection((12, 10, 40, 40), side="left"), Detection((11, 11, 40, 40), side="right")],
                          2) == [1, 2]


def test_keypoints_disambiguate_overlapping_boxes():
    kp = lambda x: np.array([[x, 50, 1.0], [x + 10, 80, 1.0], [x - 10, 80, 1.0], [x, 120, 1.0]])  # noqa: E731
    tracker = Tracker(TrackerConfig(keypoint_weight=0.8))
    same_box = (0, 0, 100, 200)
    a, b = Detection(same_box, keypoints=kp(30), joint_set="x"), Detection(same_box, keypoints=kp(70), joint_set="x")
    ids = tracker.update([a, b], 0)
    ids2 = tracker.update([Detection(same_box, keypoints=kp(71), joint_set="x"),
                           Detection(same_box, keypoints=kp(31), joint_set="x")], 1)
    assert ids2 == [ids[1], ids[0]]


def _noisy_trajectory(frames=90, joints=3, noise_deg=4.0, seed=0):
    rng = np.random.default_rng(seed)
    keys = Rotation.random(4 * joints, random_state=seed).as_quat().reshape(4, joints, 4)
    times = np.linspace(0, frames - 1, 4)
    truth = np.stack([Slerp(times, Rotation.from_quat(keys[:, j]))(np.arange(frames)).as_matrix()
                      for j in range(joints)], axis=1)
    noise = Rotation.from_rotvec(np.radians(noise_deg) * rng.standard_normal((frames * joints, 3)) / np.sqrt(3))
    noisy = (Rotation.from_matrix(truth.reshape(-1, 3, 3)) * noise).as_matrix().reshape(truth.shape)
    return truth, noisy


def _acceleration_deg(r):
    """Mean per-joint angular acceleration (degrees / frame^2) of a (T, J, 3, 3) sequence."""
    steps = Rotation.from_matrix((np.swapaxes(r[:-1], -1, -2) @ r[1:]).reshape(-1, 3, 3)).as_rotvec()
    steps = steps.reshape(len(r) - 1, -1, 3)
    return np.degrees(np.linalg.norm(steps[1:] - steps[:-1], axis=-1)).mean()


@pytest.mark.parametrize("kind", ["savgol", "one_euro"])
def test_smoothing_removes_jitter_on_so3(kind):
    truth, noisy = _noisy_trajectory()   # ~4 degrees per frame of true motion, 3.7 degrees of noise
    times = np.arange(len(truth)) / 30.0
    if kind == "savgol":
        smooth = savgol_rotations(noisy, window=9, order=2)
        error_bound = 0.6   # zero lag: closer to the truth than the noisy input
    else:
        smooth = one_euro_rotations(noisy, times, SmoothingConfig(kind="one_euro", min_cutoff=1.0, beta=1.0))
        error_bound = 1.2   # causal: pays some lag on this fast motion
    before, after = _geodesic_deg(truth, noisy).mean(), _geodesic_deg(truth, smooth).mean()
    assert after < error_bound * before, (before, after)
    assert _acceleration_deg(smooth) < 0.5 * _acceleration_deg(noisy)
    # proper rotations, not averaged matrices
    assert np.allclose(np.swapaxes(smooth, -1, -2) @ smooth, np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(smooth), 1.0, atol=1e-9)


def test_quaternion_signs_made_continuous():
    q = Rotation.from_rotvec(np.linspace(0, 3, 20)[:, None] * np.array([[0, 0, 1.0]])).as_quat()
    q[::3] *= -1
    fixed = continuous_quaternions(q)
    assert (np.sum(fixed[1:] * fixed[:-1], axis=-1) > 0).all()
    assert np.allclose(Rotation.from_quat(fixed).as_matrix(), Rotation.from_quat(q).as_matrix())


def test_smooth_track_holds_shape_and_keeps_a_constant_pose():
    frames = 12
    rot = np.repeat(Rotation.from_rotvec([[0.3, -0.2, 0.1], [0.0, 0.5, 0.0]]).as_matrix()[None], frames, axis=0)
    betas = np.random.default_rng(0).normal(size=(frames, 10))
    series = TrackSeries(rot, betas, np.zeros((frames, 3)), np.arange(frames) / 30.0, np.arange(frames))
    out = smooth_track(series, SmoothingConfig())
    assert np.allclose(out.rotmats, rot, atol=1e-9)
    assert np.allclose(out.betas, np.median(betas, axis=0)[None])
    assert smooth_track(series, SmoothingConfig(kind="none")) is series
    short = TrackSeries(rot[:2], betas[:2], np.zeros((2, 3)), np.arange(2) / 30.0, np.arange(2))
    assert np.allclose(smooth_track(short).rotmats, rot[:2])
    with pytest.raises(ValueError, match="smoothing kind"):
        SmoothingConfig(kind="gauss")


def test_acceleration_error_and_mpjpe():
    from hmr.video.metrics import acceleration_error, mpjpe
    t = np.arange(10, dtype=float)
    gt = np.stack([np.stack([t, t ** 2, 0 * t], -1)] * 2, axis=1)          # constant acceleration 2 in y
    assert acceleration_error(gt, gt) == 0.0
    shifted = gt + 5.0                                                         # an offset does not accelerate
    assert acceleration_error(shifted, gt) == 0.0 and mpjpe(shifted, gt) == pytest.approx(5 * np.sqrt(3))
    jitter = gt.copy()
    jitter[4, :, 0] += 1.0                                                     # one frame off by 1: |1 -2 1|
    assert acceleration_error(jitter, gt) == pytest.approx((1 + 2 + 1) / 8)
    with pytest.raises(ValueError):
        acceleration_error(gt[:2], gt[:2])


def test_clear_mot_counts_switches_misses_and_false_positives():
    from hmr.video.metrics import clear_mot
    a, b = (0, 0, 10, 10), (50, 0, 10, 10)
    gt = [{1: a, 2: b}] * 4
    perfect, _ = clear_mot(gt, [{7: a, 8: b}] * 4)
    assert perfect.as_dict()["mota"] == 1.0 and perfect.id_switches == 0
    swapped = [{7: a, 8: b}, {7: a, 8: b}, {8: a, 7: b}, {8: a, 7: b}]      # the tracks swap once
    counts, coverage = clear_mot(gt, swapped)
    assert counts.id_switches == 2 and counts.mota == pytest.approx(1 - 2 / 8)
    assert coverage[1] == {7: 2, 8: 2}
    missing = [{7: a}, {7: a, 9: (200, 200, 5, 5)}, {7: a, 8: b}, {7: a, 8: b}]
    counts, _ = clear_mot(gt, missing)
    assert (counts.misses, counts.false_positives, counts.id_switches) == (2, 1, 0)


def test_clear_mot_ignores_barely_visible_people():
    from hmr.video.metrics import clear_mot
    a, faint = (0, 0, 10, 10), (50, 0, 3, 3)
    counts, _ = clear_mot([{1: a}], [{7: a, 8: faint}], ignored_frames=[{2: faint}])
    assert (counts.false_positives, counts.misses, counts.gt_boxes) == (0, 0, 1)
    counts, _ = clear_mot([{1: a}], [{7: a, 8: faint}])
    assert counts.false_positives == 1
