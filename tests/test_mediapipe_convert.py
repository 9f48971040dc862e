"""hmr.models.mediapipe: the converted networks against the reference TFLite runtime, and the converter's checks.

Needs the converted files and the mediapipe wheel that ``bash scripts/setup_env.sh`` puts in ``weights/mediapipe``
and ``.cache/wheels``; without them the tests fail (not skip) and say so. The oracle is ``ai_edge_litert``
(a dev dependency): missing, the oracle test fails.
"""
import hashlib
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from hmr.models.mediapipe import NETWORKS, ConvertedFileError, check_all, convert, default_weights_dir, load_network
from hmr.models.mediapipe.convert import FORMAT_VERSION, convert_bytes, load_converted, network_path, save_atomic

REPO = Path(__file__).resolve().parents[1]
SETUP = "run `bash scripts/setup_env.sh` first"
#: TFLite-vs-torch tolerance: max|torch - litert| <= RTOL * max(1, max|litert|), per output.
RTOL = 1e-3


@pytest.fixture(scope="session")
def weights_dir():
    problems = {n: p for n, p in check_all().items() if p is not None}
    if problems:
        pytest.fail(f"converted MediaPipe networks missing or wrong ({SETUP}):\n" + "\n".join(problems.values()))
    return default_weights_dir()


@pytest.fixture(scope="session")
def wheel():
    found = sorted((REPO / ".cache" / "wheels").glob("mediapipe-0.10.21-*.whl"))
    if not found:
        pytest.fail(f"no mediapipe-0.10.21 wheel in {REPO / '.cache' / 'wheels'} ({SETUP})")
    return found[0]


def tflite_bytes(wheel, name):
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(NETWORKS[name].member)


def photos():
    """astronaut (cropped to 512x384 so that letterboxing pads) and camera (grey stacked to RGB), uint8 RGB."""
    return [data.astronaut()[:, 64:448], np.stack([data.camera()] * 3, axis=-1)]


def prepare(image, name):
    """The image as network ``name`` takes it: detectors letterboxed, the others resized; scaled to its range."""
    h, w = NETWORKS[name].input_size
    if "detection" in name:
        scale = min(h / image.shape[0], w / image.shape[1])
        nh, nw = round(image.shape[0] * scale), round(image.shape[1] * scale)
        canvas = np.zeros((h, w, 3), np.uint8)
        top, left = (h - nh) // 2, (w - nw) // 2
        canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    else:
        canvas = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    lo, hi = NETWORKS[name].input_range
    return (canvas.astype(np.float32) / 255.0 * (hi - lo) + lo)[None]


@pytest.mark.parametrize("name", list(NETWORKS))
def test_networks_match_litert_on_photos(name, weights_dir, wheel):
    from ai_edge_litert.interpreter import Interpreter  # the oracle: missing means failed, not skipped

    interpreter = Interpreter(model_content=tflite_bytes(wheel, name), num_threads=1)
    interpreter.allocate_tensors()
    net = load_network(name, weights_dir)
    for image in photos():
        x = prepare(image, name)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        expected = [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]
        with torch.no_grad():
            got = [y.numpy() for y in net(torch.from_numpy(x).permute(0, 3, 1, 2))]
        assert len(got) == len(expected)
        for k, (a, b) in enumerate(zip(got, expected)):
            assert a.shape == b.shape, (name, k)
            err = np.abs(a - b).max() / max(1.0, np.abs(b).max())
            assert err <= RTOL, f"{name} output {k} ({net.output_names[k]}): relative error {err:.2e}"


def test_named_intermediates_run_only_their_ops(weights_dir):
    net = load_network("pose_landmark_full", weights_dir)
    x = torch.from_numpy(prepare(photos()[0], "pose_landmark_full")).permute(0, 3, 1, 2)
    landmarks, skip = net.spec["outputs"][0], "t226"
    with torch.no_grad():
        full = net.tensors(x, [landmarks, skip])
        alone = net.tensors(x, [skip])[0]
        first = net(x)[0]
    torch.testing.assert_close(alone, full[1])
    torch.testing.assert_close(first, full[0])
    assert alone.shape == (1, 32, 32, 32)  # NCHW, stride 8 at 256x256
    assert len(net._schedule((skip,), ())) < len(net._schedule(tuple(net.spec["outputs"]), ())) / 4
    n_params = sum(p.numel() for p in net.parameters())
    net.prune([skip])
    assert sum(p.numel() for p in net.parameters()) < n_params / 10
    with torch.no_grad():
        torch.testing.assert_close(net.tensors(x, [skip])[0], alone)


def test_cpu_micro_batches_give_the_whole_batch_result(weights_dir):
    """Chunks of ``cpu_micro_batch`` images (4 + 2 here) give what the whole batch gives, values and gradients."""
    net = load_network("hand_landmark_full", weights_dir)
    x = torch.from_numpy(np.concatenate([prepare(p, "hand_landmark_full") for p in photos()])).permute(0, 3, 1, 2)
    x = torch.cat([x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2)])[:6].contiguous()
    outputs = net.spec["outputs"]
    results = {}
    for chunk in (4, None):
        net.cpu_micro_batch = chunk
        image = x.clone().requires_grad_(True)
        got = net.tensors(image, outputs)
        sum(y.square().mean() for y in got).backward()
        results[chunk] = [y.detach() for y in got] + [image.grad]
    assert len(x) == 6 and results[4][0].shape[0] == 6
    for a, b in zip(results[4][:-1], results[None][:-1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    scale = float(results[None][-1].abs().max())  # input gradients: float32 sums in another order
    torch.testing.assert_close(results[4][-1], results[None][-1], rtol=0, atol=1e-3 * scale)


def test_conversion_is_deterministic_and_pinned(weights_dir, wheel, tmp_path):
    names = ["selfie_segmentation", "hand_landmark_lite"]
    for out in ("a", "b"):
        assert convert(wheel, tmp_path / out, names) == {n: "converted" for n in names}
    assert convert(wheel, tmp_path / "a", names) == {n: "up to date" for n in names}
    for name in names:
        a, b = (tmp_path / "a" / f"{name}.pt").read_bytes(), (tmp_path / "b" / f"{name}.pt").read_bytes()
        assert a == b, f"{name}: two conversions differ"
        assert a == network_path(name, weights_dir).read_bytes(), \
            f"{name}: differs from the set-up file made by another process ({SETUP} after deleting it)"
        payload = torch.load(tmp_path / "a" / f"{name}.pt", weights_only=True)
        assert payload["format_version"] == FORMAT_VERSION
        assert payload["source_sha256"] == NETWORKS[name].sha256
        assert payload["content_sha256"] == NETWORKS[name].content_sha256
    assert not list((tmp_path / "a").glob(".*tmp*")), "a temporary file was left behind"


def test_pinned_source_checksums_match_the_survey():
    survey = {"pose_detection": "9ba9dd3d42efaaba", "pose_landmark_full": "e9a5c5cb17f736fa",
              "palm_detection_full": "1b14e9422c6ad006", "palm_detection_lite": "e9a4aaddf90dda56",
              "hand_landmark_full": "11c272b891e1a99a", "hand_landmark_lite": "048edd3645c9bf73",
              "selfie_segmentation": "9ee168ec7c8f2a16"}
    assert {n: i.sha256[:16] for n, i in NETWORKS.items()} == survey


def test_refuses_a_tampered_tflite(wheel, tmp_path):
    original = tflite_bytes(wheel, "selfie_segmentation")
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(ValueError, match="refusing to convert selfie_segmentation: sha256"):
        convert_bytes("selfie_segmentation", bytes(tampered))
    single = tmp_path / "selfie.tflite"
    single.write_bytes(bytes(tampered))
    with pytest.raises(ValueError, match="matches none of the pinned"):
        convert(single, tmp_path / "out", ["selfie_segmentation"])
    single.write_bytes(original)  # the same file, untampered: identified by its checksum and converted
    assert convert(single, tmp_path / "out", ["selfie_segmentation"]) == {"selfie_segmentation": "converted"}


def test_refuses_wrong_converted_files(weights_dir, tmp_path):
    good = load_converted("selfie_segmentation", weights_dir)
    target = network_path("selfie_segmentation", tmp_path)

    def write(**changes):
        save_atomic({**good, **changes}, target)

    edited = dict(good["state_dict"])
    key = sorted(edited)[0]
    edited[key] = edited[key] + 1.0
    cases = [({"state_dict": edited}, "content checksum mismatch"),
             ({"format_version": 0}, "has format 0"),
             ({"source_sha256": "0" * 64}, "not converted from the pinned"),
             ({"content_sha256": "1" * 64}, "another version of the converter")]
    for changes, message in cases:
        write(**changes)
        with pytest.raises(ConvertedFileError, match=message) as info:
            load_network("selfie_segmentation", tmp_path)
        assert str(target) in str(info.value) and "scripts/setup_env.sh" in str(info.value)
    target.write_bytes(network_path("selfie_segmentation", weights_dir).read_bytes()[:1000])
    with pytest.raises(ConvertedFileError, match="not a readable"):
        load_network("selfie_segmentation", tmp_path)
    assert check_all(tmp_path, ["selfie_segmentation"])["selfie_segmentation"] is not None


def test_missing_file_names_the_path_and_the_setup_command(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as info:
        load_network("pose_landmark_full", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "pose_landmark_full.pt") in message
    assert "bash scripts/setup_env.sh" in message and "tools/convert_mediapipe.py" in message
    monkeypatch.setenv("HMR_WEIGHTS_DIR", str(tmp_path))
    assert default_weights_dir() == tmp_path / "mediapipe"
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "mediapipe" / "hand_landmark_full.pt")):
        load_network("hand_landmark_full")
    with pytest.raises(KeyError, match="unknown MediaPipe network"):
        load_network("pose_landmark_heavy")


def test_random_init_keeps_the_architecture(weights_dir):
    trained = load_network("hand_landmark_lite", weights_dir)
    fresh = load_network("hand_landmark_lite", weights_dir, pretrained=False)
    a, b = trained.state_dict(), fresh.state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert all(not torch.equal(a[k], b[k]) for k in a if k.endswith("weight"))
    with torch.no_grad():
        out = fresh(torch.rand(1, 3, 224, 224))
    assert all(torch.isfinite(y).all() for y in out)


def test_tool_check_and_convert(weights_dir, wheel, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_mediapipe", REPO / "tools" / "convert_mediapipe.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--check"]) == 0
    assert tool.main(["--check", "--out", str(tmp_path), "--names", "selfie_segmentation"]) == 1
    assert "MISSING OR WRONG" in capsys.readouterr().out
    assert tool.main(["--wheel", str(wheel), "--out", str(tmp_path), "--names", "selfie_segmentation"]) == 0
    assert hashlib.sha256((tmp_path / "selfie_segmentation.pt").read_bytes()).hexdigest() == \
        hashlib.sha256(network_path("selfie_segmentation", weights_dir).read_bytes()).hexdigest()
