"""Unit tests of hmr.demo: boxes, focal, detections files, detectors, inputs, writers, mask IoU."""
import json

import cv2
import numpy as np
import pytest

from hmr.demo import detectors
from hmr.demo.boxes import Detection, box_from_keypoints, center_scale, mirror_box, parse_bbox
from hmr.demo.detection_file import DetectionFile, DetectionFileError
from hmr.demo.focal import exif_focal, resolve_focal
from hmr.demo.inputs import DemoInputError, Frame, Source, discover, read_frames, unique_names
from test_demo_helpers import textured_image


# -- boxes -----------------------------------------------------------------------------------------------
def test_center_scale_matches_spin_convention():
    center, scale = center_scale((10, 20, 30, 60), 1.2)
    np.testing.assert_allclose(center, [25, 50])
    assert scale == pytest.approx(1.2 * 60 / 200)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,0,4", "1,2,3,-4", "1,2,3,nan"])
def test_parse_bbox_rejects_bad_boxes(text):
    with pytest.raises(ValueError, match="x, y, w, h|x,y,w,h"):
        parse_bbox(text)


def test_parse_bbox_and_mirror():
    assert parse_bbox(" 1, 2,3,4 ") == (1.0, 2.0, 3.0, 4.0)
    assert mirror_box((10, 5, 20, 30), 100) == (70.0, 5.0, 20.0, 30.0)


def test_box_from_keypoints_ignores_low_confidence():
    kp = np.array([[10, 20, 1.0], [30, 60, 0.9], [500, 500, 0.0], [15, 25, 0.5]])
    assert box_from_keypoints(kp) == (10.0, 20.0, 20.0, 40.0)
    assert box_from_keypoints(kp[:2]) is None            # fewer than three confident points
    with pytest.raises(ValueError, match="keypoints must be"):
        box_from_keypoints(np.zeros((4, 5)))


def test_detection_rejects_unknown_side():
    with pytest.raises(ValueError, match="hand side"):
        Detection((0, 0, 1, 1), side="middle")


# -- focal -----------------------------------------------------------------------------------------------
def _jpeg_with_exif(path, w, h, tags):
    from PIL import Image

    img = Image.fromarray(textured_image(h, w))
    exif = Image.Exif()
    exif.get_ifd(0x8769).update(tags)
    img.save(path, exif=exif)


def test_focal_sources(tmp_path):
    assert resolve_focal(300, 400) == (pytest.approx(500.0), "default")
    assert resolve_focal(300, 400, flag=123.0) == (123.0, "flag")
    with pytest.raises(ValueError, match="--focal"):
        resolve_focal(300, 400, flag=-1.0)
    plain = tmp_path / "plain.jpg"
    cv2.imwrite(str(plain), textured_image(30, 40))
    assert exif_focal(plain, 30, 40) is None
    assert resolve_focal(30, 40, path=plain)[1] == "default"


def test_focal_from_exif_35mm_and_focal_plane(tmp_path):
    f35 = tmp_path / "f35.jpg"
    _jpeg_with_exif(f35, 64, 48, {0xA405: 28})
    assert resolve_focal(48, 64, path=f35) == (pytest.approx(28 * 64 / 36), "exif")
    plane = tmp_path / "plane.jpg"   # 4 mm lens, 250 px/mm sensor read out at 640 px, stored at 64 px
    _jpeg_with_exif(plane, 64, 48, {0x920A: 4.0, 0xA20E: 250.0, 0xA210: 4, 0xA002: 640})
    assert exif_focal(plane, 48, 64) == pytest.approx(4.0 * 250.0 * 64 / 640)


# -- detections files ------------------------------------------------------------------------------------
def _frame(tmp_path, name="img1.jpg", kind="image", index=0):
    source = Source(tmp_path / name, kind)
    stem = source.path.stem
    return Frame(source, stem if kind == "image" else f"{stem}_{index:06d}", index, np.zeros((4, 4, 3), np.uint8))


def test_detection_file_coco_list_and_mapping(tmp_path):
    coco = {"images": [{"id": 7, "file_name": "sub/img1.jpg"}, {"id": 8, "file_name": "img2.jpg"}],
            "annotations": [{"image_id": 7, "bbox": [1, 2, 3, 4], "score": 0.9, "category_id": 1}]}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    found = DetectionFile(path, "body")
    assert [d.bbox for d in found.lookup(_frame(tmp_path))] == [(1.0, 2.0, 3.0, 4.0)]
    assert found.lookup(_frame(tmp_path, "img2.jpg")) == []          # listed, no boxes
    assert found.lookup(_frame(tmp_path, "img3.jpg")) is None        # not in the file
    path.write_text(json.dumps([{"image": "img1.jpg", "bbox": [5, 6, 7, 8]}, {"frame": 3, "bbox": [1, 1, 2, 2]}]))
    found = DetectionFile(path, "body")
    assert found.lookup(_frame(tmp_path))[0].bbox == (5.0, 6.0, 7.0, 8.0)
    assert found.lookup(_frame(tmp_path, "clip.mp4", "video", 3))[0].bbox == (1.0, 1.0, 2.0, 2.0)
    path.write_text(json.dumps({"img1": [[1, 2, 3, 4, 0.5]]}))
    assert DetectionFile(path, "body").lookup(_frame(tmp_path))[0].score == 0.5


def test_detection_file_keypoints_to_boxes(tmp_path):
    pose = [10, 20, 1, 30, 60, 1, 20, 40, 1]
    left = [1, 1, 1, 5, 9, 1, 3, 3, 1]
    right = [50, 50, 1, 60, 70, 1, 55, 60, 1]
    people = {"people": [{"pose_keypoints_2d": pose, "hand_left_keypoints_2d": left,
                          "hand_right_keypoints_2d": right}]}
    folder = tmp_path / "openpose"
    folder.mkdir()
    (folder / "img1_keypoints.json").write_text(json.dumps(people))
    body = DetectionFile(folder, "body").lookup(_frame(tmp_path))
    assert [d.bbox for d in body] == [(10.0, 20.0, 20.0, 40.0)]
    hands = DetectionFile(folder, "hand").lookup(_frame(tmp_path))
    assert {d.side: d.bbox for d in hands} == {"left": (1.0, 1.0, 4.0, 8.0), "right": (50.0, 50.0, 10.0, 20.0)}
    assert DetectionFile(folder, "hand").lookup(_frame(tmp_path, "other.jpg")) is None
    wholebody = tmp_path / "wb.json"
    wholebody.write_text(json.dumps([{"image": "img1.jpg", "lefthand_box": [1, 2, 3, 4], "lefthand_valid": True,
                                      "righthand_box": [0, 0, 0, 0], "righthand_valid": False}]))
    hands = DetectionFile(wholebody, "hand").lookup(_frame(tmp_path))
    assert [(d.side, d.bbox) for d in hands] == [("left", (1.0, 2.0, 3.0, 4.0))]


def test_detection_file_errors(tmp_path):
    with pytest.raises(DetectionFileError, match="not found"):
        DetectionFile(tmp_path / "missing.json", "body")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DetectionFileError, match="cannot read"):
        DetectionFile(bad, "body")
    bad.write_text(json.dumps([{"bbox": [1, 2, 3, 4]}]))
    with pytest.raises(DetectionFileError, match="name its image"):
        DetectionFile(bad, "body")
    bad.write_text(json.dumps([{"image": "a.jpg", "bbox": [1, 2, 3, 4], "side": "up"}]))
    with pytest.raises(DetectionFileError, match="hand side"):
        DetectionFile(bad, "hand")


# -- detectors -------------------------------------------------------------------------------------------
def test_box_iou_and_nms():
    assert detectors.box_iou((0, 0, 2, 2), (1, 1, 2, 2)) == pytest.approx(1 / 7)
    dets = [Detection((0, 0, 10, 10), 0.5), Detection((1, 1, 10, 10), 0.9), Detection((50, 50, 5, 5), 0.1)]
    kept = detectors.nms(dets)
    assert [d.score for d in kept] == [0.9, 0.1]


def test_build_detector_choices_and_errors(tmp_path, monkeypatch):
    assert detectors.build_detector("none", "body") is None
    with pytest.raises(detectors.DetectorError, match="not hands"):
        detectors.build_detector("face", "hand")
    with pytest.raises(detectors.DetectorError, match="unknown --detector"):
        detectors.build_detector("yolo-please", "body")
    with pytest.raises(detectors.DetectorError, match="not found"):
        detectors.build_detector(str(tmp_path / "yolov8n.pt"), "body")
    # without the converted MediaPipe networks, auto falls back to HOG/face (bodies) and no detector (hands)
    monkeypatch.setenv("HMR_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    assert detectors.build_detector("auto", "hand") is None
    with pytest.raises(detectors.DetectorError, match="setup_env.sh"):
        detectors.build_detector("blazepose", "body")
    auto = detectors.build_detector("auto", "body")
    if detectors.hog_available():
        assert isinstance(detectors.build_detector("hog", "body"), detectors.HogPeopleDetector)
        assert callable(auto)
    else:
        assert isinstance(auto, detectors.FacePersonDetector)
    if not detectors.hog_available():
        with pytest.raises(detectors.DetectorError, match="HOGDescriptor"):
            detectors.build_detector("hog", "body")


def test_auto_detector_cascade_prefers_confident_primary_then_fallback():
    from hmr.demo.boxes import Detection
    weak, strong, face = Detection((0, 0, 5, 5), 0.5, "hog"), Detection((1, 1, 5, 5), 1.5, "hog"), \
        Detection((2, 2, 5, 5), 1.0, "face")
    image = np.zeros((8, 8, 3), np.uint8)
    run = detectors.cascade(lambda im: [weak, strong], lambda im: [face], confident=1.0)
    assert run(image) == [strong]
    run = detectors.cascade(lambda im: [weak], lambda im: [face], confident=1.0)
    assert run(image) == [face]
    run = detectors.cascade(lambda im: [weak], lambda im: [], confident=1.0)
    assert run(image) == [weak]


def test_detector_plugins(tmp_path):
    plugin = tmp_path / "my_detector.py"
    plugin.write_text("def make():\n    return lambda image: [(1, 2, 3, 4), (5, 6, 7, 8, 0.25)]\n"
                      "def broken():\n    return 42\n")
    found = detectors.build_detector(f"{plugin}:make", "body")(np.zeros((8, 8, 3), np.uint8))
    assert [(d.bbox, d.score) for d in found] == [((1.0, 2.0, 3.0, 4.0), 1.0), ((5.0, 6.0, 7.0, 8.0), 0.25)]
    with pytest.raises(detectors.DetectorError, match="not a callable"):
        detectors.build_detector(f"{plugin}:broken", "body")
    with pytest.raises(detectors.DetectorError, match="cannot load"):
        detectors.build_detector("no_such_module_xyz:make", "body")
    detectors.register_detector("fixed-test", lambda kind: (lambda image: [Detection((0, 0, 2, 2))]))
    assert detectors.build_detector("fixed-test", "body")(None)[0].bbox == (0.0, 0.0, 2.0, 2.0)


def test_face_detector_finds_the_astronaut():
    import skimage.data

    image = skimage.data.astronaut()
    found = detectors.FacePersonDetector(max_side=256)(image)
    assert len(found) >= 1
    fx, fy, fs, _ = found[0].extra["face_xywh"]
    # the face in this photograph lies around x 180-260, y 70-160 (pixels of the 512x512 image)
    assert 150 < fx + fs / 2 < 290 and 50 < fy + fs / 2 < 180
    x, y, w, h = found[0].bbox
    assert h == pytest.approx(8 * fs) and x < fx and y < fy


# -- inputs ----------------------------------------------------------------------------------------------
def test_discover_and_unreadable_images(tmp_path):
    with pytest.raises(DemoInputError, match="not found"):
        discover(tmp_path / "nope")
    with pytest.raises(DemoInputError, match="no images"):
        discover(tmp_path)
    cv2.imwrite(str(tmp_path / "b.png"), textured_image(16, 16))
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    sources = discover(tmp_path)
    assert [s.path.name for s in sources] == ["a.jpg", "b.png"]
    frames = [f for s in sources for f in read_frames(s)]
    assert frames[0].image is None and "cannot decode" in frames[0].error
    assert frames[1].image.shape == (16, 16, 3)
    assert unique_names([Source(tmp_path / "x.jpg", "image"), Source(tmp_path / "x.png", "image")]) == \
        ["x_jpg", "x_png"]


def test_video_frames_and_writer_round_trip(tmp_path):
    from hmr.demo.export import VideoWriter

    path = tmp_path / "clip.avi"
    writer = VideoWriter(path, fps=10)
    for i in range(5):
        writer.write(np.full((32, 48, 3), 40 * i, np.uint8))
    assert not path.exists()                       # appears only when finished
    assert writer.close() and path.is_file()
    frames = list(read_frames(Source(path, "video"), stride=2))
    assert [f.index for f in frames] == [0, 2, 4] and frames[0].image.shape == (32, 48, 3)
    assert [f.name for f in frames] == ["clip_000000", "clip_000002", "clip_000004"]
    assert abs(float(frames[2].image.mean()) - 160) < 8
    assert frames[0].fps == pytest.approx(5.0)
    empty = VideoWriter(tmp_path / "empty.mp4", fps=10)
    assert not empty.close() and not (tmp_path / "empty.mp4").exists() and len(list(tmp_path.glob(".empty*"))) == 0
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    assert list(read_frames(Source(broken, "video")))[0].error is not None


# -- writers ---------------------------------------------------------------------------------------------
def test_mesh_files_round_trip(tmp_path):
    import trimesh

    from hmr.demo.export import save_mesh, stack_params

    verts = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    faces = np.array([[0, 1, 2], [1, 3, 2], [2, 3, 4]])
    for suffix in ("obj", "ply"):
        save_mesh(tmp_path / f"m.{suffix}", verts, faces)
        mesh = trimesh.load(tmp_path / f"m.{suffix}", process=False)
        np.testing.assert_allclose(mesh.vertices, verts, atol=1e-6)
        np.testing.assert_array_equal(mesh.faces, faces)
    with pytest.raises(ValueError, match=".obj or .ply"):
        save_mesh(tmp_path / "m.stl", verts, faces)
    stacked = stack_params([{"a": np.zeros((1, 3))}, {"a": np.ones((1, 3))}])
    assert stacked["a"].shape == (2, 3)
    with pytest.raises(ValueError, match="leading dimension"):
        stack_params([{"a": np.zeros(3)}])


def test_mask_iou_against_counting():
    from hmr.demo.mask_iou import mask_iou

    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:5, :5] = True
    b[2:7, 2:7] = True
    assert mask_iou(a, b) == pytest.approx(9 / (25 + 25 - 9))
    assert mask_iou(a, a) == 1.0 and mask_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(a, b[:5])


def test_alignment_vector_from_detection_keypoints():
    from hmr.body.joint_sets import get_joint_set
    from hmr.demo.boxes import Detection, alignment_vector

    names = get_joint_set("openpose25").names
    kp = np.zeros((25, 3))
    for name, xy in (("r_hip", (10, 100)), ("l_hip", (30, 104)), ("r_shoulder", (14, 50)), ("l_shoulder", (34, 50))):
        kp[names.index(name)] = (*xy, 0.9)
    body = Detection((0, 0, 50, 120), 0.9, "test", keypoints=kp, joint_set="openpose25")
    np.testing.assert_allclose(alignment_vector(body), [4.0, -52.0])
    kp[names.index("l_hip"), 2] = 0.0  # unseen hip: no vector
    assert alignment_vector(Detection((0, 0, 50, 120), 0.9, "test", keypoints=kp, joint_set="openpose25")) is None
    hand_names = get_joint_set("freihand21").names
    hk = np.zeros((21, 3))
    hk[:, 2] = 0.8
    hk[hand_names.index("wrist"), :2] = (50, 80)
    hk[hand_names.index("middle1"), :2] = (70, 60)
    hand = Detection((0, 0, 100, 100), 0.8, "test", keypoints=hk, joint_set="freihand21")
    np.testing.assert_allclose(alignment_vector(hand), [20.0, -20.0])
    assert alignment_vector(Detection((0, 0, 10, 10), 0.5, "test")) is None
