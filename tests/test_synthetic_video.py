"""Synthetic video sequences: labels agree with an independent forward pass and projection, motion is smooth,
crossing people keep distinct identities and overlap, the video has every frame, the CLI works end to end."""
import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmr.data.spin_npz import load_npz_checked
from hmr.data.synthetic.sequences import SEQUENCE_PRESETS, SequenceSpec, preset, render_sequence, slerp
from hmr.vis.render import Mesh, Renderer

REPO = Path(__file__).resolve().parents[1]
TINY = dict(width=96, height=72)


def _labels(folder):
    with np.load(Path(folder) / "labels.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    out = tmp_path_factory.mktemp("walk")
    render_sequence(preset("single_walk", frames=16, **TINY), out)
    return out


@pytest.fixture(scope="module")
def crossing(tmp_path_factory):
    out = tmp_path_factory.mktemp("crossing")
    render_sequence(preset("crossing2", frames=12, fps=5.0, **TINY), out)  # 2.4 s: the walkers pass each other
    return out


def _forward(smpl, lab):
    with torch.no_grad():
        out = smpl(full_pose=torch.from_numpy(lab["rotmat"]).float(), betas=torch.from_numpy(lab["shape"]).float(),
                   transl=torch.from_numpy(lab["transl"]).float())
        spin = smpl.keypoints(out.vertices, out.joints, "spin24").double().numpy()
    return out.vertices.double().numpy(), out.joints.double().numpy(), spin


def test_labels_agree_with_an_independent_forward_pass_and_projection(walk, crossing, smpl):
    for folder in (walk, crossing):
        lab = _labels(folder)
        load_npz_checked(Path(folder) / "labels.npz")  # the project's SPIN npz reader accepts the shapes
        n = len(lab["imgname"])
        assert all((Path(folder) / name).is_file() for name in lab["imgname"])
        verts, joints, spin = _forward(smpl, lab)
        uvw = np.einsum("nij,nkj->nki", lab["K"], spin)
        np.testing.assert_allclose(uvw[..., :2] / uvw[..., 2:], lab["part"][..., :2], atol=2e-3)
        np.testing.assert_allclose(lab["S"][..., :3], spin - joints[:, :1], atol=1e-4)  # pelvis-relative, metres
        np.testing.assert_allclose(Rotation.from_rotvec(lab["pose"].reshape(-1, 3)).as_matrix(),
                                   lab["rotmat"].reshape(-1, 3, 3), atol=1e-5)
        inside = (uvw[..., 2] > 0) & np.all((lab["part"][..., :2] >= 0)
                                            & (lab["part"][..., :2] <= [TINY["width"] - 1, TINY["height"] - 1]), -1)
        np.testing.assert_array_equal(lab["part"][..., 2], inside.astype(float))
        assert np.all(lab["img_size"] == [TINY["height"], TINY["width"]]) and np.all(lab["scale"] > 0)
        np.testing.assert_allclose(lab["timestamp"], lab["frame_index"] / 30.0 if folder == walk
                                   else lab["frame_index"] / 5.0)
        assert np.all((lab["visible_fraction"] >= 0) & (lab["visible_fraction"] <= 1))
        # re-render frame by frame from the parameters alone: the visible boxes are the labels' boxes
        renderer = Renderer(TINY["width"], TINY["height"])
        faces = smpl.faces.numpy()
        for f in np.unique(lab["frame_index"]):
            rows = np.nonzero(lab["frame_index"] == f)[0]
            rows = rows[np.argsort(lab["person_id"][rows])]
            labels = renderer.render_meshes([Mesh(verts[r].astype(np.float32), faces) for r in rows],
                                            lab["K"][rows[0]]).labels
            for i, r in enumerate(rows):
                ys, xs = np.nonzero(labels == i)
                box = lab["bbox_xywh"][r]
                if len(xs) == 0:
                    assert np.all(box == 0) and lab["visible_fraction"][r] == 0
                    continue
                np.testing.assert_allclose(box, [xs.min() - 0.5, ys.min() - 0.5, np.ptp(xs) + 1, np.ptp(ys) + 1])
                full = lab["bbox_full_xywh"][r]
                assert box[0] >= full[0] - 1 and box[0] + box[2] <= full[0] + full[2] + 1
        assert n == len(np.unique(lab["frame_index"])) * len(np.unique(lab["person_id"]))


def _smoothness(x):
    """mean |second difference| / mean |first difference| over frames (x: (F, ...))."""
    v, a = np.diff(x, axis=0), np.diff(x, n=2, axis=0)
    return float(np.abs(a).mean() / np.abs(v).mean())


def test_ground_truth_motion_is_smooth(walk, smpl):
    lab = _labels(walk)
    _, joints, _ = _forward(smpl, lab)
    ratio = _smoothness(joints)
    noisy = _smoothness(joints + np.random.default_rng(0).normal(0, 0.01, joints.shape))
    assert ratio < 0.35 < noisy, (ratio, noisy)
    # rotations: per-frame geodesic steps are small and change slowly
    R = lab["rotmat"]
    steps = np.degrees(Rotation.from_matrix((np.swapaxes(R[:-1], -1, -2) @ R[1:]).reshape(-1, 3, 3))
                       .magnitude()).reshape(len(R) - 1, 24)
    jerk = np.abs(np.diff(steps, axis=0)).max()
    assert steps.max() < 12.0 and jerk < 3.0, (steps.max(), jerk)  # fast limbs reach ~8 degrees per frame
    assert np.ptp(lab["part"][:, 0, 0]) > 5  # the walker moves across the image
    assert np.all(lab["shape"] == lab["shape"][0])  # one shape per person


def test_slerp_is_geodesic_and_hits_the_ends():
    R0, R1 = Rotation.random(5, random_state=0).as_matrix(), Rotation.random(5, random_state=1).as_matrix()
    np.testing.assert_allclose(slerp(R0, R1, np.zeros(5)), R0, atol=1e-9)
    np.testing.assert_allclose(slerp(R0, R1, np.ones(5)), R1, atol=1e-9)
    mid = slerp(R0, R1, np.full(5, 0.5))
    a = Rotation.from_matrix(np.swapaxes(R0, 1, 2) @ mid).magnitude()
    b = Rotation.from_matrix(np.swapaxes(mid, 1, 2) @ R1).magnitude()
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_crossing_people_keep_distinct_ids_and_their_boxes_overlap_for_a_while(crossing):
    lab = _labels(crossing)
    frames = np.unique(lab["frame_index"])
    overlap = []
    for f in frames:
        rows = np.nonzero(lab["frame_index"] == f)[0]
        assert sorted(lab["person_id"][rows]) == [0, 1]
        a, b = (lab["bbox_full_xywh"][r] for r in rows)
        overlap.append(min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]) > 0)
    assert any(overlap) and not overlap[0] and not overlap[-1], overlap  # apart, crossing, apart again
    for pid in (0, 1):  # each identity keeps one shape and moves one way
        rows = lab["person_id"] == pid
        assert np.all(lab["shape"][rows] == lab["shape"][rows][0])
    dx = [np.diff(lab["transl"][lab["person_id"] == pid][:, 0]) for pid in (0, 1)]
    assert np.all(dx[0] * dx[1][0] < 0) and np.all(dx[1] * dx[1][0] > 0)  # opposite directions
    assert lab["visible_fraction"].min() < 0.95  # someone gets occluded or cut


def test_video_has_every_frame_and_manifest_pins_the_spec(crossing):
    cap = cv2.VideoCapture(str(crossing / "video.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == 12 and len(list((crossing / "frames").glob("*.jpg"))) == 12
    spec = SequenceSpec(**json.loads((crossing / "manifest.json").read_text()))
    assert spec == preset("crossing2", frames=12, fps=5.0, **TINY)
    with pytest.raises(ValueError, match="frames: 12 in the folder, 13 now"):
        render_sequence(preset("crossing2", frames=13, fps=5.0, **TINY), crossing)


def test_same_spec_reproduces_the_labels(tmp_path):
    spec = preset("crossing2_pan", frames=4, **TINY)
    render_sequence(spec, tmp_path / "a")
    render_sequence(spec, tmp_path / "b")
    render_sequence(spec, tmp_path / "b")  # a rerun with the same settings into the same folder is allowed
    a, b = _labels(tmp_path / "a"), _labels(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    other = _labels(Path(render_sequence(replace(spec, seed=99), tmp_path / "c")["out_dir"]))
    assert not np.allclose(other["transl"], a["transl"])


def test_spec_validation_and_presets():
    assert {"single_walk", "single_pan", "crossing2", "crossing3"} <= set(SEQUENCE_PRESETS)
    assert SEQUENCE_PRESETS["crossing3"].people == 3 and SEQUENCE_PRESETS["single_pan"].camera_motion
    for bad in (dict(people=4), dict(kind="hand"), dict(frames=1), dict(width=8)):
        with pytest.raises(ValueError):
            SequenceSpec(**bad)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_video.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_cli_renders_all_presets_end_to_end(tmp_path):
    res = _cli("--preset", "all", "--out", str(tmp_path), "--frames", "3", "--size", "64x48", "--no-progress")
    assert res.returncode == 0, res.stderr
    for name in SEQUENCE_PRESETS:
        assert f"{name}: wrote {tmp_path / name}" in res.stdout
        lab = _labels(tmp_path / name)
        assert len(lab["imgname"]) == 3 * SEQUENCE_PRESETS[name].people
        assert (tmp_path / name / "video.mp4").stat().st_size > 0


def _tool():
    spec = importlib.util.spec_from_file_location("make_synthetic_video_tool",
                                                  REPO / "tools" / "make_synthetic_video.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_errors_exit_2_with_a_clear_message(tmp_path, capsys):
    res = _cli("--preset", "nope", "--out", str(tmp_path))
    assert res.returncode == 2 and "unknown preset 'nope'" in res.stderr and "crossing2" in res.stderr
    tool = _tool()
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["--preset", "crossing2", "--out", str(tmp_path), "--size", "big"])
    assert exit_info.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err
    assert tool.main(["--preset", "crossing2", "--out", str(tmp_path), "--frames", "1"]) == 2
    assert "frames >= 2" in capsys.readouterr().err
    assert not (tmp_path / "labels.npz").exists()


def test_bench_video_on_a_tiny_crossing(crossing, tmp_path):
    """tools/bench_video.py end to end with ground-truth boxes: every visible person tracked, scores computed."""
    from test_demo_helpers import make_checkpoint
    ckpt = make_checkpoint(tmp_path / "body.pt", "body")
    proc = subprocess.run([sys.executable, "tools/bench_video.py", "--checkpoint", str(ckpt), "--sequences",
                           str(crossing), "--boxes", "gt", "--smooth-window", "5", "--json", str(tmp_path / "r.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    (result,) = report["results"]
    assert result["people"] == 2 and result["mot"]["misses"] == 0 and result["mot"]["false_positives"] == 0
    scored = [p for p in result["per_person"] if "accel_raw" in p]
    assert len(scored) == 2 and all(p["frames"] == 12 and np.isfinite([p["mpjpe_raw"], p["mpjpe_smooth"],
                                                                      p["accel_raw"], p["accel_smooth"]]).all()
                                    for p in scored)   # an untrained model: values, not their size
    assert "identity switches" in proc.stdout
    proc = subprocess.run([sys.executable, "tools/bench_video.py", "--checkpoint", str(ckpt), "--sequences",
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "make_synthetic_video.py" in proc.stderr
