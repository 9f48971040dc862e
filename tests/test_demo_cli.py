"""End-to-end tests of tools/demo.py and tools/demo_iou.py on tiny inputs (untrained tiny checkpoints)."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_demo_helpers import REPO, make_checkpoint, textured_image


def run_tool(script, *args):
    return subprocess.run([sys.executable, str(REPO / "tools" / script), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo_ckpt")
    return {"body": make_checkpoint(folder / "body.pt", "body"), "hand": make_checkpoint(folder / "hand.pt", "hand")}


def test_demo_on_a_folder_with_a_bad_file_and_detections(tiny_synthetic_root, checkpoints, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        src = tiny_synthetic_root / "body_quick" / "images" / "test" / f"{i:08d}.jpg"
        (images / f"img{i}.jpg").write_bytes(src.read_bytes())
    (images / "broken.jpg").write_bytes(b"definitely not a jpeg")
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps({"images": [{"id": 1, "file_name": "img0.jpg"}],
                                "annotations": [{"image_id": 1, "bbox": [20, 10, 40, 70], "score": 0.9},
                                                {"image_id": 1, "bbox": [5, 5, 20, 30], "score": 0.4}]}))
    out = tmp_path / "out"
    result = run_tool("demo.py", "--checkpoint", checkpoints["body"], "--input", images, "--out", out,
                      "--detections", dets, "--batch-size", 2, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stdout and "broken.jpg" in result.stdout
    assert "img1: not in detections file dets.json; whole image used" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["body_model"] == "open-smpl" and summary["representation"] == "prom"
    assert [s["input"].endswith("broken.jpg") for s in summary["skipped"]] == [True]
    frames = {f["name"]: f for f in summary["frames"]}
    assert [p["score"] for p in frames["img0"]["people"]] == [0.9, 0.4]
    assert frames["img1"]["people"][0]["source"] == "whole-image (fallback)"
    for name, count in (("img0", 2), ("img1", 1)):
        overlay = cv2.imread(str(out / name / "overlay.png"))
        h, w = cv2.imread(str(images / f"{name}.jpg")).shape[:2]
        assert overlay.shape == (h, 2 * w, 3)
        for k in range(count):
            params = np.load(out / name / f"person{k:02d}.npz")
            assert params["body_pose"].shape == (1, 69) and params["global_orient_rotmat"].shape == (1, 1, 3, 3)
            assert str(params["body_model"]) == "open-smpl" and params["focal_length"] == pytest.approx(
                np.hypot(h, w), rel=1e-5)
            np.testing.assert_allclose(params["center"], frames[name]["people"][k]["center"], atol=0.01)
            assert (out / name / f"person{k:02d}.obj").stat().st_size > 0
            assert (out / name / f"person{k:02d}.ply").stat().st_size > 0


def _clip(path: Path, frames: int) -> Path:
    """A 64x48 MJPG video at 10 frames/s of smooth random images."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        writer.write(textured_image(48, 64, seed=i))
    writer.release()
    return path


def test_demo_on_a_video_and_a_left_hand(checkpoints, tmp_path):
    video = _clip(tmp_path / "clip.avi", 4)
    out = tmp_path / "out"
    code = _main()(["--checkpoint", str(checkpoints["hand"]), "--input", str(video), "--out", str(out),
                    "--bbox", "10,8,30,30", "--hand", "left", "--no-side-view", "--quiet"])
    assert code == 0
    params = np.load(out / "clip" / "params.npz")
    assert params["frame_index"].tolist() == [0, 1, 2, 3] and params["hand_pose"].shape == (4, 45)
    assert params["mirrored"].all() and str(params["body_model"]) == "open-mano-right"
    capture = cv2.VideoCapture(str(out / "clip" / "overlay.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    ok, frame = capture.read()
    assert ok and frame.shape == (48, 64, 3)
    capture.release()
    summary = json.loads((out / "summary.json").read_text())
    person = summary["frames"][0]["people"][0]
    assert person["side"] == "left" and person["body_model"] == "open-mano-left" and person["mirrored"]
    assert [f["people"][0]["track_id"] for f in summary["frames"]] == [1, 1, 1, 1]
    (track,) = summary["tracks"][str(video)]
    assert track["frames"] == 4 and track["body_model"] == "open-mano-left" and track["smoothing"] == "savgol"
    assert sorted(Path(p).suffix for p in track["outputs"]) == [".bvh", ".glb", ".npz"]
    with np.load(out / "clip/tracks/track_01.npz") as exported:
        assert exported["hand_pose"].shape == (4, 45) and exported["frame_index"].tolist() == [0, 1, 2, 3]
        assert np.allclose(exported["timestamps"], [0.0, 0.1, 0.2, 0.3], atol=1e-3)
    import pygltflib
    doc = pygltflib.GLTF2().load_binary(str(out / "clip/tracks/track_01.glb"))
    assert len(doc.skins[0].joints) == 16 and doc.accessors[doc.animations[0].samplers[0].input].count == 4



def _corrupt_frame(video: Path, frame: int) -> None:
    """Zero one MJPG frame's JPEG in place (OpenCV then fails to decode that frame only): AVI frame chunks are
    ``00dc`` + a 4-byte little-endian size + the frame's JPEG."""
    data = bytearray(video.read_bytes())
    starts, at = [], data.find(b"00dc")
    while at >= 0:
        if data[at + 8:at + 10] == b"\xff\xd8":
            starts.append(at + 8)
        at = data.find(b"00dc", at + 4)
    size = int.from_bytes(data[starts[frame] - 4:starts[frame]], "little")
    data[starts[frame]:starts[frame] + size] = bytes(size)
    video.write_bytes(bytes(data))


def test_demo_video_with_an_undecodable_frame_keeps_the_track(checkpoints, tmp_path):
    video = _clip(tmp_path / "clip.avi", 6)
    _corrupt_frame(video, 3)
    out = tmp_path / "out"
    code = _main()(["--checkpoint", str(checkpoints["body"]), "--input", str(video), "--out", str(out),
                    "--bbox", "8,4,40,40", "--no-side-view", "--quiet", "--smooth", "one_euro", "--export", "npz"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["frame"], s["error"]) for s in summary["skipped"]] == [(3, "frame 3 does not decode")]
    (track,) = summary["tracks"][str(video)]
    assert track["frames"] == 5 and track["smoothing"] == "one_euro" and len(track["outputs"]) == 1
    with np.load(out / "clip/tracks/track_01.npz") as exported:
        assert exported["frame_index"].tolist() == [0, 1, 2, 4, 5]
        assert np.allclose(exported["timestamps"], [0.0, 0.1, 0.2, 0.4, 0.5], atol=1e-3)
        assert exported["body_pose"].shape == (5, 69) and exported["rotmats_per_frame"].shape == (5, 24, 3, 3)


def test_demo_video_without_people_writes_no_animation(checkpoints, tmp_path, encoder_weights, monkeypatch, capsys):
    video = _clip(tmp_path / "empty.avi", 3)
    out = tmp_path / "out"
    assert _main()(["--checkpoint", str(checkpoints["body"]), "--input", str(video), "--out", str(out),
                    "--detector", "blazepose", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tracks"][str(video)] == [] and not (out / "empty/tracks").exists()
    for export, message in (("xyz", "unknown export format"), ("fbx", "setup_blender.sh")):
        monkeypatch.setenv("HMR_BLENDER_PATH", str(tmp_path / "no_blender"))
        assert _main()(["--checkpoint", str(checkpoints["body"]), "--input", str(video), "--out", str(out),
                        "--export", export]) == 2
        assert message in capsys.readouterr().err

def _check_iou_report(out, stdout):
    report = json.loads(out.read_text())
    assert report["count"] == 2 and 0.0 <= report["mean_iou"] <= 1.0 and "mean IoU" in stdout
    assert len(report["per_sample"]) == 2


def test_demo_iou_tool_in_process(tiny_synthetic_root, checkpoints, tmp_path, capsys):
    out = tmp_path / "iou.json"
    code = _main("demo_iou.py")(["--checkpoint", str(checkpoints["body"]), "--npz",
                                 str(tiny_synthetic_root / "body_quick" / "test.npz"), "--max-samples", "2",
                                 "--out", str(out)])
    assert code == 0
    _check_iou_report(out, capsys.readouterr().out)
    assert _main("demo_iou.py")(["--checkpoint", str(checkpoints["hand"]), "--npz",
                                 str(tiny_synthetic_root / "body_quick" / "test.npz")]) == 2
    assert "needs a body checkpoint" in capsys.readouterr().err


def test_demo_iou_fit_scores_the_fitted_meshes_on_the_same_samples(tiny_synthetic_root, checkpoints, tmp_path,
                                                                    capsys):
    """--fit: BlazePose on each rendered image, the demo's fit, the fitted meshes' IoU next to the regressor's."""
    out = tmp_path / "iou.json"
    code = _main("demo_iou.py")(["--checkpoint", str(checkpoints["body"]), "--npz",
                                 str(tiny_synthetic_root / "body_quick" / "test.npz"), "--max-samples", "2",
                                 "--fit", "--out", str(out)])
    assert code == 0
    stdout = capsys.readouterr().out
    _check_iou_report(out, stdout)
    fitted = json.loads(out.read_text())["fitted"]
    assert "fitted to detected keypoints" in stdout and sum(fitted["status_counts"].values()) == 2
    assert set(fitted["per_sample"]) == set(json.loads(out.read_text())["per_sample"])
    assert 0.0 <= fitted["mean_iou"] <= 1.0


def test_mask_iou_fitting_needs_both_fitter_and_detector(tiny_synthetic_root):
    from hmr.demo.mask_iou import synthetic_mask_iou
    with pytest.raises(ValueError, match="both a fitter and a keypoint detector"):
        synthetic_mask_iou(object(), tiny_synthetic_root / "body_quick" / "test.npz", detector=lambda image: [])


@pytest.mark.slow
def test_demo_iou_tool_subprocess(tiny_synthetic_root, checkpoints, tmp_path):
    out = tmp_path / "iou.json"
    result = run_tool("demo_iou.py", "--checkpoint", checkpoints["body"], "--npz",
                      tiny_synthetic_root / "body_quick" / "test.npz", "--max-samples", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    _check_iou_report(out, result.stdout)


def _main(script="demo.py"):
    """A tool's ``main`` loaded in-process (cheaper than a subprocess: no second torch import)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(script.replace(".py", "_tool"), REPO / "tools" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("extra, message", [
    (["--hand", "left"], "needs a hand checkpoint"),
    (["--body-model", "open-mano-right"], "trained for body model 'open-smpl'"),
    (["--representation", "sixd"], "representation 'prom'"),
    (["--bbox", "1,2,3"], "x,y,w,h"),
    (["--detector", "nonsense"], "unknown --detector"),
])
def test_demo_errors(checkpoints, tmp_path, capsys, extra, message):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), textured_image(32, 32))
    code = _main()(["--checkpoint", str(checkpoints["body"]), "--input", str(image), "--out", str(tmp_path / "o"),
                    "--quiet", *extra])
    assert code == 2 and message in capsys.readouterr().err


def test_demo_missing_inputs(checkpoints, tmp_path, capsys):
    main = _main()
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), textured_image(32, 32))
    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--input", str(image), "--quiet"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["--checkpoint", str(checkpoints["body"]), "--input", str(tmp_path / "nope.jpg"), "--quiet"]) == 2
    assert "input not found" in capsys.readouterr().err


def test_demo_skip_undetected_says_so(checkpoints, tmp_path, capsys):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), textured_image(32, 32))
    plugin = tmp_path / "never.py"
    plugin.write_text("def make():\n    return lambda image: []\n")
    out = tmp_path / "o"
    code = _main()(["--checkpoint", str(checkpoints["body"]), "--input", str(image), "--out", str(out),
                    "--detector", f"{plugin}:make", "--skip-undetected", "--quiet"])
    assert code == 0
    assert "a: no detection; frame skipped" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_without_detection"] == ["a"] and summary["frames"][0]["people"] == []
    assert not (out / "a").exists()


def test_demo_refit_keeps_rotations_and_refits_shape(checkpoints, tmp_path, capsys):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), textured_image(96, 80))
    params = {}
    for refit in (False, True):
        out = tmp_path / ("refit" if refit else "plain")
        code = _main()(["--checkpoint", str(checkpoints["body"]), "--input", str(image), "--out", str(out),
                        "--bbox", "10,5,60,85", "--no-meshes", "--quiet"] + (["--refit"] if refit else []))
        assert code == 0
        assert json.loads((out / "summary.json").read_text())["refit"] is refit
        params[refit] = np.load(out / "a" / "person00.npz")
    assert "refitted to the training-time skeleton" in capsys.readouterr().out
    np.testing.assert_allclose(params[True]["global_orient_rotmat"], params[False]["global_orient_rotmat"])
    np.testing.assert_allclose(params[True]["body_pose"], params[False]["body_pose"])
    assert np.abs(params[True]["betas"] - params[False]["betas"]).max() > 1e-4
