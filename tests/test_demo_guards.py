"""tools/demo.py on inputs that used to give garbage or tracebacks: boxes outside the image, implausible focal
lengths, tiny images, nothing readable, RGBA images, huge images (bounded overlay), unwritable outputs, and
detection files with bad values."""
import errno
import json

import cv2
import numpy as np
import pytest

from hmr.demo.detection_file import DetectionFile, DetectionFileError
from test_demo_cli import _main
from test_demo_helpers import make_checkpoint, textured_image


@pytest.fixture(scope="module")
def body_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("guard_ckpt") / "body.pt", "body")


def _image(tmp_path, h=96, w=80, name="a.png"):
    path = tmp_path / name
    cv2.imwrite(str(path), textured_image(h, w))
    return path


def _run(ckpt, image, out, *extra):
    return _main()(["--checkpoint", str(ckpt), "--input", str(image), "--out", str(out), "--quiet", "--no-meshes",
                    *map(str, extra)])


def test_box_wholly_outside_the_image_is_rejected(body_ckpt, tmp_path, capsys):
    image, out = _image(tmp_path), tmp_path / "o"
    assert _run(body_ckpt, image, out, "--bbox", "500,500,10,10") == 1
    captured = capsys.readouterr()
    assert "wholly outside the 80x96 image" in captured.out + captured.err
    assert "nothing was processed" in captured.err
    assert not (out / "a").exists()
    # with a second box inside the image, that one is used and the other is reported
    assert _run(body_ckpt, image, out, "--bbox", "500,500,10,10", "--bbox", "10,5,60,85") == 0
    summary = json.loads((out / "summary.json").read_text())
    frame = summary["frames"][0]
    assert len(frame["people"]) == 1 and "wholly outside" in " ".join(frame["warnings"])


def test_detection_file_box_outside_falls_back_and_says_so(body_ckpt, tmp_path, capsys):
    image, out = _image(tmp_path), tmp_path / "o"
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps({"a.png": [[900, 900, 20, 20]]}))
    assert _run(body_ckpt, image, out, "--detections", dets) == 0
    frame = json.loads((out / "summary.json").read_text())["frames"][0]
    assert frame["people"][0]["source"] == "whole-image (fallback)" and "wholly outside" in " ".join(frame["warnings"])


@pytest.mark.parametrize("focal, rc, message", [
    ("1e-9", 1, "field of view"),           # plausible for no image: the frame is refused
    ("inf", 2, "finite positive"),          # refused before anything is loaded
    ("nan", 2, "finite positive"),
    ("0", 2, "finite positive"),
])
def test_implausible_focal_lengths_are_refused(body_ckpt, tmp_path, capsys, focal, rc, message):
    out = tmp_path / "o"
    assert _run(body_ckpt, _image(tmp_path), out, "--focal", focal) == rc
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    assert not list(out.glob("*/person*.npz"))


def test_options_and_inputs_are_checked_before_the_checkpoint_loads(tmp_path, capsys):
    missing_ckpt = tmp_path / "none.pt"
    assert _run(missing_ckpt, tmp_path / "nope.jpg", tmp_path / "o") == 2
    assert "input not found" in capsys.readouterr().err
    assert _run(missing_ckpt, _image(tmp_path), tmp_path / "o", "--focal", "inf") == 2
    assert "--focal" in capsys.readouterr().err


def test_tiny_image_is_refused(body_ckpt, tmp_path, capsys):
    image = tmp_path / "dot.png"
    cv2.imwrite(str(image), np.full((1, 1, 3), 200, np.uint8))
    assert _run(body_ckpt, image, tmp_path / "o") == 1
    captured = capsys.readouterr()
    assert "1x1 pixels" in captured.out + captured.err and "nothing was processed" in captured.err


def test_every_input_unreadable_exits_non_zero(body_ckpt, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    (folder / "b.png").write_bytes(b"")
    assert _run(body_ckpt, folder, tmp_path / "o") == 1
    err = capsys.readouterr().err
    assert "nothing was processed" in err and "2 inputs" in err


def test_rgba_input_is_composited_on_grey_and_reported(body_ckpt, tmp_path):
    rgba = np.zeros((96, 80, 4), np.uint8)
    rgba[..., 2] = 255  # red (BGRA), fully transparent
    rgba[40:60, 30:50, 3] = 255  # an opaque red square
    path = tmp_path / "t.png"
    cv2.imwrite(str(path), rgba)
    out = tmp_path / "o"
    assert _run(body_ckpt, path, out, "--bbox", "30,40,20,20", "--no-side-view") == 0
    frame = json.loads((out / "summary.json").read_text())["frames"][0]
    assert any("alpha" in w and "128" in w for w in frame["warnings"])
    overlay = cv2.imread(str(out / "t" / "overlay.png"))
    assert tuple(overlay[0, 0]) == (128, 128, 128)  # a transparent corner: grey, not the hidden red


def test_overlay_of_a_large_image_is_drawn_at_a_bounded_size(body_ckpt, tmp_path, monkeypatch):
    from hmr.demo import runner

    monkeypatch.setattr(runner, "OVERLAY_MAX_SIDE", 48)
    out = tmp_path / "o"
    assert _run(body_ckpt, _image(tmp_path, 96, 80), out, "--bbox", "10,5,60,85") == 0
    overlay = cv2.imread(str(out / "a" / "overlay.png"))
    assert overlay.shape == (48, 2 * 40, 3)
    frame = json.loads((out / "summary.json").read_text())["frames"][0]
    assert frame["overlay_scale"] == pytest.approx(0.5)
    params = np.load(out / "a" / "person00.npz")
    assert params["img_size"].tolist() == [96, 80]  # parameters stay in the full image's camera


def test_overlay_camera_follows_the_resize():
    from hmr.demo.export import overlay_view

    image = textured_image(300, 200)
    K = np.array([[400.0, 0, 100], [0, 400, 150], [0, 0, 1]])
    small, K_small, scale = overlay_view(image, K, 150)
    assert small.shape == (150, 100, 3) and scale == pytest.approx(0.5)
    point = np.array([0.1, -0.2, 2.0])
    uv = (K @ point)[:2] / point[2]
    uv_small = (K_small @ point)[:2] / point[2]
    np.testing.assert_allclose(uv_small, (uv + 0.5) * 0.5 - 0.5)  # pixel centres at integer coordinates
    same, K_same, one = overlay_view(image, K, 300)
    assert same is image and np.array_equal(K_same, K) and one == 1.0


@pytest.mark.parametrize("failure, code, name", [
    (OSError(errno.ENOSPC, "No space left on device"), 28, "disk is full"),
    (PermissionError(errno.EACCES, "Permission denied"), 13, "no permission"),
])
def test_write_failures_are_one_line_naming_the_file(body_ckpt, tmp_path, monkeypatch, capsys, failure, code, name):
    from hmr.demo import writer

    def fail(path, image):
        raise failure

    monkeypatch.setattr(writer, "save_png", fail)
    out = tmp_path / "o"
    assert _run(body_ckpt, _image(tmp_path), out, "--bbox", "10,5,60,85") == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(errors) == 1
    assert str(out / "a" / "overlay.png") in errors[0] and f"errno {code}" in errors[0] and name in errors[0]


@pytest.mark.parametrize("entry, message", [
    ({"image": "img1.jpg", "bbox": ["a", 2, 3, 4]}, "four finite numbers"),
    ({"image": "img1.jpg", "bbox": [1, 2, 3, 4], "score": "high"}, "score"),
    ({"image": "img1.jpg", "keypoints": ["x", 1, 1]}, "keypoints"),
    ({"image": "img1.jpg", "bbox": [1, 2, -3, 4]}, "positive width"),
])
def test_detection_file_value_errors_name_the_file_and_the_image(tmp_path, entry, message):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([entry]))
    with pytest.raises(DetectionFileError) as err:
        DetectionFile(path, "body")
    text = str(err.value)
    assert str(path) in text and "'img1.jpg'" in text and message in text
