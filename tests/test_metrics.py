"""hmr.metrics and hmr.protocols against independent implementations (scipy, brute force)."""
import json

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from hmr import metrics as M
from hmr.body.joint_sets import LSP14_FROM_H36M17, LSP14_FROM_SPIN24
from hmr.protocols import PROTOCOLS, Protocol, get_protocol, protocol_for_dataset


def _loop_mpjpe(pred, gt):
    return np.array([np.mean([np.sqrt(((p - g) ** 2).sum()) for p, g in zip(P, G)]) for P, G in zip(pred, gt)])


def _spin_pa_oracle(pred, gt):
    """Kabsch rotation from scipy, least-squares scale, then the mean error."""
    out = []
    for p, g in zip(pred, gt):
        pc, gc = p - p.mean(0), g - g.mean(0)
        R, _ = Rotation.align_vectors(gc, pc)
        rp = R.apply(pc)
        s = (rp * gc).sum() / (pc ** 2).sum()
        out.append(np.linalg.norm(s * rp - gc, axis=-1).mean())
    return np.array(out)


def _official_freihand_align(pred, gt):
    """The FreiHAND evaluation procedure written with scipy, one sample at a time."""
    out = []
    for p, g in zip(pred, gt):
        gc, pc = g - g.mean(0), p - p.mean(0)
        s1, s2 = np.linalg.norm(gc) + 1e-8, np.linalg.norm(pc) + 1e-8
        R, s = orthogonal_procrustes(gc / s1, pc / s2)
        out.append((pc / s2) @ R.T * s * s1 + g.mean(0))
    return np.stack(out)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    gt = rng.normal(scale=0.3, size=(5, 14, 3))
    return gt + rng.normal(scale=0.05, size=gt.shape), gt


def test_mpjpe_and_pve_match_a_loop(pair):
    pred, gt = pair
    np.testing.assert_allclose(M.mpjpe(pred, gt), _loop_mpjpe(pred, gt))
    np.testing.assert_allclose(M.pve(torch.from_numpy(pred), torch.from_numpy(gt)), _loop_mpjpe(pred, gt))
    shifted = pred + np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(M.mpjpe(shifted, gt, root=0),
                               _loop_mpjpe(pred - pred[:, :1], gt - gt[:, :1]))
    np.testing.assert_allclose(M.mpjpe(shifted, gt, root=(2, 3)),
                               _loop_mpjpe(pred - pred[:, 2:4].mean(1, keepdims=True),
                                           gt - gt[:, 2:4].mean(1, keepdims=True)))


def test_pa_mpjpe_matches_scipy_oracle_and_removes_similarities(pair):
    pred, gt = pair
    np.testing.assert_allclose(M.pa_mpjpe(pred, gt), _spin_pa_oracle(pred, gt), rtol=1e-7)
    R = Rotation.random(5, random_state=1).as_matrix()
    moved = 1.7 * gt @ np.transpose(R, (0, 2, 1)) + 0.4
    np.testing.assert_allclose(M.pa_mpjpe(moved, gt), 0.0, atol=1e-9)
    np.testing.assert_allclose(M.pa_pve(moved, gt), 0.0, atol=1e-9)
    assert (M.pa_mpjpe(pred, gt) <= M.mpjpe(pred, gt) + 1e-12).all()


def test_freihand_alignment_is_the_official_procedure_and_allows_reflections(pair):
    pred, gt = pair
    np.testing.assert_allclose(M.freihand_align(pred, gt), _official_freihand_align(pred, gt), atol=1e-12)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(M.freihand_align(mirrored, gt), gt, atol=1e-6)    # official: no reflection fix
    assert (M.pa_mpjpe(mirrored, gt) > 1e-3).all()                              # SPIN's: proper rotations only


def _brute_f(pred, gt, th):
    d = np.linalg.norm(pred[:, None] - gt[None], axis=-1)
    p, r = (d.min(1) < th).mean(), (d.min(0) < th).mean()
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def test_f_score_matches_brute_force_nearest_neighbours():
    rng = np.random.default_rng(4)
    gt = rng.normal(scale=0.02, size=(3, 50, 3))
    pred = gt[:, :40] + rng.normal(scale=0.004, size=(3, 40, 3))
    pred = np.concatenate([pred, pred[:, :10]], axis=1)
    for th in (0.002, 0.005, 0.015):
        np.testing.assert_allclose(M.f_score(pred, gt, th), [_brute_f(p, g, th) for p, g in zip(pred, gt)])
    grid = np.array([[[0.0, 0, 0], [0.5, 0, 0]]])
    assert M.f_score(grid + np.array([0.5, 0, 0]), grid, 0.5)[0] == pytest.approx(2 * 0.5 * 0.5 / 1.0)


def test_auc_against_a_direct_trapezoid():
    rng = np.random.default_rng(5)
    d = rng.uniform(0, 0.08, size=(20, 21))
    th = np.linspace(0, 0.05, 100)
    curve = np.array([(d <= t).mean() for t in th])
    assert M.auc(d) == pytest.approx(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(th)) / 0.05)
    assert M.auc(np.zeros(5)) == pytest.approx(1.0)
    assert M.auc(np.full(5, 0.2)) == pytest.approx(0.0)


def test_freihand_metrics_summary_and_perfect_prediction():
    rng = np.random.default_rng(6)
    gj, gv = rng.normal(scale=0.03, size=(4, 21, 3)), rng.normal(scale=0.03, size=(4, 778, 3))
    R = Rotation.random(4, random_state=2).as_matrix()
    perfect = M.freihand_metrics(0.5 * gj @ np.transpose(R, (0, 2, 1)), gj, 2 * gv @ np.transpose(R, (0, 2, 1)), gv)
    assert perfect["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-4)
    assert perfect["f@5mm"] == pytest.approx(1.0) and perfect["auc_vertices"] > 0.99
    noisy = M.freihand_metrics(gj + 0.004 * rng.normal(size=gj.shape), gj, gv + 0.004 * rng.normal(size=gv.shape), gv)
    errs = M.freihand_errors(gj + 0.0, gj)
    assert set(errs) == {"pa_mpjpe", "joint_distances"}
    assert 0 < noisy["f@5mm"] < noisy["f@15mm"] <= 1 and noisy["pa_mpvpe_mm"] > 0


def test_metric_input_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        M.mpjpe(np.zeros((2, 14, 3)), np.zeros((2, 13, 3)))
    with pytest.raises(ValueError, match="NaN"):
        M.pa_mpjpe(np.full((1, 3, 3), np.nan), np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match=r"\(N, K, 3\)"):
        M.mpjpe(np.zeros((14, 3)), np.zeros((14, 3)))
    with pytest.raises(ValueError, match="both"):
        M.freihand_errors(np.zeros((1, 21, 3)), np.zeros((1, 21, 3)), np.zeros((1, 778, 3)))
    with pytest.raises(ValueError, match="positive"):
        M.f_score(np.zeros((1, 3, 3)), np.zeros((1, 3, 3)), 0.0)


# ---- protocols -------------------------------------------------------------------------------------------
def test_protocols_round_trip_through_json():
    for protocol in PROTOCOLS.values():
        assert Protocol.from_dict(json.loads(protocol.to_json())) == protocol
    with pytest.raises(ValueError, match="unknown protocol keys"):
        Protocol.from_dict({**get_protocol("h36m_p1").to_dict(), "extra": 1})
    assert protocol_for_dataset("pw3d").name == "3dpw_test"
    with pytest.raises(KeyError, match="no evaluation protocol"):
        protocol_for_dataset("coco")


def test_3dpw_protocol_follows_spin():
    rng = np.random.default_rng(7)
    p = get_protocol("3dpw_test")
    pred, gt = rng.normal(size=(3, 17, 3)), rng.normal(size=(3, 17, 3))
    pv, gv = rng.normal(size=(3, 30, 3)), rng.normal(size=(3, 30, 3))
    errs = p.evaluate(pred + 5.0, gt, pv + 5.0, gv)     # a global offset is removed by the pelvis
    p14 = (pred - pred[:, :1])[:, list(LSP14_FROM_H36M17)]
    g14 = (gt - gt[:, :1])[:, list(LSP14_FROM_H36M17)]
    np.testing.assert_allclose(errs["mpjpe"], _loop_mpjpe(p14, g14))
    np.testing.assert_allclose(errs["pa_mpjpe"], _spin_pa_oracle(p14, g14), rtol=1e-7)
    np.testing.assert_allclose(errs["pve"], _loop_mpjpe(pv - pred[:, :1], gv - gt[:, :1]))
    assert p.summarize(errs)["mpjpe_mm"] == pytest.approx(1000 * errs["mpjpe"].mean())
    assert p.gt_body_model_for(0) == "smpl-male" and p.gt_body_model_for(-1) == "smpl-neutral"
    used = p.with_gt_body_model("smpl-neutral", "gendered SMPL files missing")
    assert used.gt_body_model == "smpl-neutral" and "missing" in used.notes
    with pytest.raises(ValueError, match="pred_vertices"):
        p.evaluate(pred, gt)


def test_h36m_protocol_uses_file_joints_without_recentring():
    rng = np.random.default_rng(8)
    p = get_protocol("h36m_p1")
    pred, gt24 = rng.normal(size=(2, 17, 3)), rng.normal(size=(2, 24, 3))
    errs = p.evaluate(pred, gt24)
    np.testing.assert_allclose(errs["mpjpe"], _loop_mpjpe((pred - pred[:, :1])[:, list(LSP14_FROM_H36M17)],
                                                          gt24[:, list(LSP14_FROM_SPIN24)]))
    with pytest.raises(ValueError, match="spin24"):
        p.evaluate(pred, gt24[:, :17])


def test_freihand_protocol_oracle_is_zero():
    rng = np.random.default_rng(9)
    gj, gv = rng.normal(size=(2, 21, 3)), rng.normal(size=(2, 778, 3))
    p = get_protocol("freihand_eval")
    summary = p.summarize(p.evaluate(gj, gj, gv, gv))
    assert summary["pa_mpjpe_mm"] == pytest.approx(0, abs=1e-4) and summary["f@15mm"] == pytest.approx(1.0)


def test_protocol_lookup_by_dataset_and_split():
    p = get_protocol("pw3d", "val")
    assert p.name == "3dpw_test@val" and p.split == "val" and p.gt_from_mesh and p.metric_family == "spin"
    assert get_protocol("freihand").metric_family == "freihand" and not get_protocol("h36m_p2").gt_from_mesh
    with pytest.raises(KeyError, match="unknown protocol"):
        get_protocol("coco")
