"""The demo on real photographs with the MediaPipe keypoint detectors (BlazePose, Hands) and keypoint fitting:
keypoints in the summary and on the overlay, fitting lowers the 2D error, no person / no hand is said and nothing
pretends otherwise, low-confidence keypoints do not pull the fit, a diverging fit falls back, videos track.
Untrained tiny checkpoints (mean-pose predictions); needs the converted MediaPipe networks (setup_env.sh)."""
import dataclasses
import json

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from hmr.demo import detectors
from hmr.demo.boxes import Detection
from hmr.demo.draw import COLORS, draw_keypoints
from hmr.demo.fitting import DemoFitter
from hmr.demo.keypoint_detectors import BlazePoseDetector, HandsDetector, missing_networks
from hmr.demo.predictor import CropInput, DemoModel
from hmr.fitting import FitParams, project_keypoints
from test_demo_cli import _main
from test_demo_helpers import make_checkpoint, textured_image


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    for kind in ("body", "hand"):
        problem = missing_networks(kind)
        if problem:
            pytest.fail(problem)
    folder = tmp_path_factory.mktemp("real_ckpt")
    return {k: make_checkpoint(folder / f"{k}.pt", k) for k in ("body", "hand")}


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    cv2.imwrite(str(path), skimage.data.astronaut()[..., ::-1])
    return path


def _run(ckpt, image, out, *extra):
    return _main()(["--checkpoint", str(ckpt), "--input", str(image), "--out", str(out), "--quiet", "--no-meshes",
                    "--threads", "1", *map(str, extra)])


@pytest.fixture(scope="module")
def fitted_astronaut(ckpts, astronaut, tmp_path_factory):
    out = tmp_path_factory.mktemp("astronaut_fit")
    assert _run(ckpts["body"], astronaut, out, "--detector", "blazepose", "--fit") == 0
    return out, json.loads((out / "summary.json").read_text())


def test_blazepose_keypoints_reach_the_summary_npz_and_overlay(fitted_astronaut):
    out, summary = fitted_astronaut
    person = summary["frames"][0]["people"][0]
    assert person["source"] == "blazepose" and 0.5 < person["score"] <= 1.0
    kp = person["keypoints"]
    assert kp["joint_set"] == "openpose25" and {"nose", "neck", "l_shoulder", "r_shoulder"} <= set(kp["points"])
    nose = kp["points"]["nose"]
    # the official MediaPipe pipeline puts her nose at (222.7, 128.0) in this 512x512 photo
    assert abs(nose[0] - 222.7) < 6 and abs(nose[1] - 128.0) < 6 and nose[2] > 0.9
    assert "r_ankle" not in kp["points"]  # below the frame: not reported, not used
    params = np.load(out / "astronaut" / "person00.npz")
    assert params["keypoints_detected"].shape == (25, 3) and str(params["keypoints_joint_set"]) == "openpose25"
    assert params["landmarks"].shape == (33, 3) and str(params["fit_status"]) == "ok"
    overlay = cv2.imread(str(out / "astronaut" / "overlay.png"))[..., ::-1]
    x, y = round(nose[0]), round(nose[1])
    assert tuple(overlay[y, x]) == COLORS["centre"]  # the nose marker is drawn on top of the mesh


def test_fit_lowers_the_2d_keypoint_error_on_a_real_photo(fitted_astronaut):
    person = fitted_astronaut[1]["frames"][0]["people"][0]
    err, fit = person["keypoint_error"], person["fit"]
    assert fit["status"] == "ok" and not fit["fell_back"] and fit["seconds"] > 0 and fit["batch"] == 1
    assert err["keypoints_used"] >= 8 and err["min_confidence"] == 0.3
    assert err["fitted_px"] < 0.5 * err["regressor_px"]
    assert err["fitted_box"] == pytest.approx(err["fitted_px"] / err["box_side_px"], abs=1e-3)
    assert fitted_astronaut[1]["fit"] is True and fitted_astronaut[1]["frames"][0]["seconds"]["fit"] > 0


def test_no_person_is_said_per_image_and_nothing_pretends(ckpts, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "wall.png"), textured_image(120, 160))
    out = tmp_path / "o"
    assert _run(ckpts["body"], folder, out, "--fit") == 0
    stdout = capsys.readouterr().out
    assert "wall: no person found (BlazePose); frame skipped, nothing written" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"][0]["people"] == [] and summary["frames_without_detection"] == ["wall"]
    assert not (out / "wall").exists()


def test_hand_checkpoint_on_a_photo_without_hands_says_so(ckpts, astronaut, tmp_path, capsys):
    out = tmp_path / "o"
    assert _run(ckpts["hand"], astronaut, out) == 0
    assert "no hand found (MediaPipe Hands): this is a hand checkpoint and needs a photo with a visible hand" \
        in capsys.readouterr().out
    assert not list(out.glob("*/person*.npz"))


def test_auto_picks_blazepose_for_bodies_and_hands_for_hands():
    assert isinstance(detectors.build_detector("auto", "body"), BlazePoseDetector)
    assert isinstance(detectors.build_detector("auto", "hand"), HandsDetector)
    with pytest.raises(detectors.DetectorError, match="use --detector hands"):
        detectors.build_detector("blazepose", "hand")
    with pytest.raises(detectors.DetectorError, match="use --detector blazepose"):
        detectors.build_detector("hands", "body")


def test_diverging_fit_falls_back_to_the_regressor_and_says_so(ckpts, astronaut, tmp_path, monkeypatch, capsys):
    import hmr.fitting.fit as fit_module
    original = fit_module.energy

    def nan_energy(*args, **kwargs):
        terms = original(*args, **kwargs)
        return dataclasses.replace(terms, total=terms.total * float("nan"))

    monkeypatch.setattr(fit_module, "energy", nan_energy)
    out = tmp_path / "o"
    assert _run(ckpts["body"], astronaut, out, "--fit") == 0
    captured = capsys.readouterr()
    assert "fit diverged" in captured.out  # the tool's listing
    assert "WARNING hmr.demo.fitting" in captured.err and "diverged" in captured.err  # the log line
    summary = json.loads((out / "summary.json").read_text())
    person = summary["frames"][0]["people"][0]
    assert person["fit"]["status"] == "diverged" and person["fit"]["fell_back"]
    assert "regressor's mesh is kept" in person["fit"]["message"] and summary["fit_fallbacks"]
    assert person["keypoint_error"]["fitted_px"] == person["keypoint_error"]["regressor_px"]
    assert str(np.load(out / "astronaut" / "person00.npz")["fit_status"]) == "diverged"


def test_low_confidence_keypoints_do_not_pull_the_fit(ckpts):
    model = DemoModel(ckpts["body"])
    image = textured_image(240, 320)
    person = model.predict([CropInput(image, np.array([160.0, 120.0]), 1.0, 400.0)])[0]
    params = FitParams.from_predictions([person])
    bent = FitParams(params.rotmats.clone(), params.betas, params.transl)
    for joint, angle in ((16, -0.9), (17, 0.9), (1, -0.6)):  # shoulders raised, a hip bent
        bent.rotmats[0, joint] = torch.as_tensor(cv2.Rodrigues(np.array([0.0, 0.0, angle]))[0], dtype=torch.float32)
    target = project_keypoints(model.body_model, bent, torch.as_tensor(person.K), "openpose25")[0].numpy()
    absent = np.concatenate([target, np.ones((25, 1))], axis=1)
    absent[4, 2] = 0.0  # no right wrist
    wrong = absent.copy()
    wrong[4] = [target[4, 0] + 150.0, target[4, 1] - 120.0, 0.05]  # a wrong right wrist at low confidence
    fitter = DemoFitter(model, fit=True, min_confidence=0.3)
    box = (100.0, 20.0, 120.0, 200.0)
    fits = [fitter.process([Detection(box, 0.9, "test", keypoints=kp, joint_set="openpose25")], [person])[0][0]
            for kp in (absent, wrong)]
    errors = [f.record["keypoint_error"] for f in fits]
    assert [e["keypoints_used"] for e in errors] == [24, 24]
    assert errors[1]["fitted_px"] < 0.5 * errors[1]["regressor_px"]
    np.testing.assert_array_equal(fits[0].person.vertices, fits[1].person.vertices)


def test_fit_keeps_legs_cut_off_by_the_image_out_of_it_when_asked(ckpts):
    """The image's size reaches the fit: with ``w_outside`` (``--fit-set w_outside=10``) knees detected below an
    image that ends just above them are pushed towards its bottom edge from a start with raised thighs (a soft
    bound: most of the way); the default (off) and a call without the image size leave them further in."""
    model = DemoModel(ckpts["body"])
    person = model.predict([CropInput(textured_image(240, 320), np.array([160.0, 120.0]), 1.0, 400.0)])[0]
    K = torch.as_tensor(person.K)
    target = project_keypoints(model.body_model, FitParams.from_predictions([person]), K, "openpose25")[0].numpy()
    legs, hips = [10, 11, 13, 14], [9, 12]
    cut = float(0.2 * target[hips, 1].mean() + 0.8 * target[[10, 13], 1].mean())  # just above the knees
    keypoints = np.concatenate([target, (target[:, 1:2] < cut).astype(np.float64)], axis=1)  # beyond: confidence 0
    assert keypoints[legs, 2].sum() == 0
    raised = person.rotmats.copy()
    for joint in (1, 2):  # both hips flexed: the thighs point at the camera
        raised[joint] = raised[joint] @ cv2.Rodrigues(np.array([-1.8, 0.0, 0.0]))[0].astype(np.float32)
    start = dataclasses.replace(person, rotmats=raised)
    raised_px = project_keypoints(model.body_model, FitParams.from_predictions([start]), K, "openpose25")[0]
    assert bool((raised_px[[10, 13], 1] < cut).all())
    detection = Detection((100.0, 20.0, 120.0, 200.0), 0.9, "test", keypoints=keypoints, joint_set="openpose25")
    size = (int(np.ceil(cut)), 320)
    fitted = {}
    for name, fitter, image_size in (
            ("on", DemoFitter(model, fit=True, overrides={"w_outside": 10.0}), size),
            ("off", DemoFitter(model, fit=True), size),
            ("no size", DemoFitter(model, fit=True, overrides={"w_outside": 10.0}), None)):
        fit = fitter.process([detection], [start], image_size=image_size)[0][0]
        assert fit.status == "ok"
        fitted[name] = project_keypoints(model.body_model, FitParams.from_predictions([fit.person]), K,
                                         "openpose25")[0]
    inside = {name: float((size[0] - px[legs, 1]).clamp_min(0).max()) for name, px in fitted.items()}
    assert inside["off"] > 6.0, inside                         # pixels inside the image's bottom edge
    assert inside["on"] < 0.5 * inside["off"], inside          # a soft (quadratic) bound: pushed out, not clamped
    torch.testing.assert_close(fitted["no size"], fitted["off"])


def test_video_frames_follow_last_frames_people_and_fits(ckpts, tmp_path):
    photo = skimage.data.astronaut()[::2, ::2]  # 256 x 256
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 256))
    for shift in (0, 4, 8):
        frame = np.full((256, 320, 3), 90, np.uint8)
        frame[:, 20 + shift:276 + shift] = photo
        writer.write(frame[..., ::-1].copy())
    writer.release()
    out = tmp_path / "o"
    assert _run(ckpts["body"], video, out, "--fit", "--batch-size", "1", "--no-side-view") == 0
    frames = json.loads((out / "summary.json").read_text())["frames"]
    people = [f["people"][0] for f in frames]
    assert [p["source"] for p in people] == ["blazepose", "blazepose (tracked)", "blazepose (tracked)"]
    assert [p["fit"]["start"] for p in people] == ["regressor", "previous frame's fit", "previous frame's fit"]
    assert all(p["fit"]["status"] == "ok" for p in people)
    params = np.load(out / "clip" / "params.npz")
    assert params["keypoints_detected"].shape == (3, 25, 3) and params["fit_status"].tolist() == ["ok"] * 3


def test_draw_keypoints_skips_ignored_points():
    image = np.zeros((40, 40, 3), np.uint8)
    kp = np.zeros((21, 3))
    kp[0] = [10, 10, 0.9]
    kp[1] = [30, 30, 0.1]
    draw_keypoints(image, kp, "freihand21", 0.3)
    assert tuple(image[10, 10]) == COLORS["centre"] and tuple(image[30, 30]) == (0, 0, 0)
    assert image[27:34, 27:34].max() > 0  # the ignored one is a grey ring


def test_detection_file_keypoints_travel_with_the_box(tmp_path):
    from hmr.demo.detection_file import entry_detections
    body = np.concatenate([np.random.default_rng(0).uniform(10, 90, (25, 2)), np.ones((25, 1))], axis=1)
    det = entry_detections({"pose_keypoints_2d": body.reshape(-1).tolist()}, "body", "f.json")[0]
    assert det.joint_set == "openpose25" and det.keypoints.shape == (25, 3)
    hand = entry_detections({"hand_left_keypoints_2d": body[:21].reshape(-1).tolist()}, "hand", "f.json")[0]
    assert hand.joint_set == "freihand21" and hand.side == "left"
    odd = entry_detections({"keypoints": body[:17].reshape(-1).tolist()}, "body", "f.json")[0]
    assert odd.keypoints is None and odd.joint_set is None


def test_given_boxes_get_blazepose_keypoints_for_the_fit(ckpts, astronaut, tmp_path):
    out = tmp_path / "o"
    assert _run(ckpts["body"], astronaut, out, "--bbox", "60,100,280,412", "--fit") == 0
    person = json.loads((out / "summary.json").read_text())["frames"][0]["people"][0]
    assert person["source"] == "bbox-flag + blazepose keypoints" and person["fit"]["status"] == "ok"
    assert person["keypoint_error"]["fitted_px"] < person["keypoint_error"]["regressor_px"]


def test_fit_settings_are_checked_before_the_checkpoint_loads(tmp_path, astronaut, capsys):
    assert _run(tmp_path / "missing.pt", astronaut, tmp_path / "o", "--fit", "--fit-set", "bogus=1") == 2
    assert "unknown FitConfig field(s) ['bogus']" in capsys.readouterr().err
    assert _run(tmp_path / "missing.pt", astronaut, tmp_path / "o", "--fit", "--fit-set", "iterations") == 2
    assert "FIELD=NUMBER" in capsys.readouterr().err


def test_selfie_segmentation_masks_the_person():
    from hmr.demo.photos import PersonSegmenter, sample_photos
    photos = sample_photos()
    assert set(photos) == {"astronaut", "camera", "grace_hopper"}
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in photos.values())
    mask = PersonSegmenter()(photos["astronaut"])
    assert mask.shape == (512, 512) and mask[128, 222] and not mask[20, 480]  # her nose; the sky by the rocket


def test_left_hand_found_mirrored_and_fitted_with_the_left_model(ckpts, tmp_path):
    from test_keypoints_pipelines import render_palm
    image, _ = render_palm("left")
    path = tmp_path / "palm.png"
    cv2.imwrite(str(path), image[..., ::-1])
    out = tmp_path / "o"
    assert _run(ckpts["hand"], path, out, "--fit") == 0
    person = json.loads((out / "summary.json").read_text())["frames"][0]["people"][0]
    assert person["source"] == "hands" and person["side"] == "left" and person["mirrored"]
    assert person["body_model"] == "open-mano-left" and person["keypoints"]["joint_set"] == "freihand21"
    assert person["fit"]["status"] == "ok"
    assert person["keypoint_error"]["fitted_px"] < person["keypoint_error"]["regressor_px"]


def test_hand_tracking_follows_a_moving_hand():
    from test_keypoints_pipelines import render_palm
    image, _ = render_palm("right")
    detector = HandsDetector()
    detector.reset(tracking=True)
    wrists = []
    for shift in (0, 6, 12):
        frame = np.full_like(image, 200)
        frame[:, shift:] = image[:, :image.shape[1] - shift]
        found = detector(frame)
        assert len(found) == 1 and found[0].side == "right"
        wrists.append(found[0].keypoints[0, :2])
        assert found[0].source == ("hands" if shift == 0 else "hands (tracked)")
    steps = np.diff(np.array(wrists), axis=0)
    np.testing.assert_allclose(steps, [[6, 0], [6, 0]], atol=1.5)


def test_bench_real_photos_speed_part_runs_on_a_tiny_video(ckpts, tmp_path, capsys):
    """tools/bench_real_photos.py --parts speed end to end: the three video modes, frames/s and the ratio line."""
    import importlib.util

    from test_demo_helpers import REPO
    spec = importlib.util.spec_from_file_location("bench_real_photos", REPO / "tools" / "bench_real_photos.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "bench"
    assert tool.main(["--checkpoint", str(ckpts["body"]), "--parts", "speed", "--frames", "3", "--threads", "1",
                      "--out", str(out)]) == 0
    speed = json.loads((out / "report.json").read_text())["speed"]
    assert set(speed) == {"tracking", "tracking, own alignment pass", "detector every frame"}
    assert all(row["frames"] == 3 and row["fps"] > 0 for row in speed.values())
    assert "keypoint alignment vs the regressor's own alignment pass" in capsys.readouterr().out
    assert tool.main(["--checkpoint", str(ckpts["hand"]), "--parts", "speed", "--out", str(out)]) == 2
