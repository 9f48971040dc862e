"""The faster input pipeline gives the same numbers as the direct formulas; the throughput benchmark and the
GPU check (tiny, on the CPU) run end to end."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from hmr.data.augment import color_jitter
from hmr.data.crop import IMAGENET_MEAN, IMAGENET_STD, normalize_image
from hmr.data.image import ImageReadError, decode_image
from hmr.data.throughput import workers_needed, write_photo_set

REPO = Path(__file__).resolve().parents[1]


def _photos():
    camera = np.repeat(skimage.data.camera()[..., None], 3, axis=2)
    return [skimage.data.astronaut(), camera, skimage.data.coffee(), skimage.data.chelsea()]


@pytest.mark.parametrize("quality", [75, 95])
def test_decode_image_matches_opencv_on_real_photos(quality):
    for image in _photos():
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        reference = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(decode_image(buf.tobytes()), reference)
    ok, grey = cv2.imencode(".jpg", skimage.data.camera())   # a one-channel JPEG comes back as RGB
    assert decode_image(grey.tobytes()).shape == (512, 512, 3)
    ok, png = cv2.imencode(".png", skimage.data.astronaut()[..., ::-1])
    assert np.array_equal(decode_image(png.tobytes()), skimage.data.astronaut())
    with pytest.raises(ImageReadError, match="broken.jpg"):
        decode_image(b"\xff\xd8\xff garbage", "broken.jpg")
    with pytest.raises(ImageReadError):
        decode_image(b"", "empty.jpg")


def test_table_normalisation_equals_the_formula():
    image = np.random.default_rng(0).integers(0, 256, size=(37, 29, 3), dtype=np.uint8)
    direct = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    assert torch.equal(normalize_image(image), torch.from_numpy(np.ascontiguousarray(direct.transpose(2, 0, 1))))
    with pytest.raises(ValueError, match="uint8"):
        normalize_image(image.astype(np.float32))


def test_table_colour_jitter_equals_the_formula():
    image = skimage.data.astronaut()
    for gain in [(0.6, 1.0, 1.4), (1.2, 1.3, 0.9), (1.0, 1.0, 1.0)]:
        direct = np.clip(image.astype(np.float32) * np.asarray(gain, dtype=np.float32), 0, 255).astype(np.uint8)
        assert np.array_equal(color_jitter(image, gain), direct), gain


def test_photo_set_and_worker_count(tmp_path):
    from hmr.data.registry import build_dataset
    npz = write_photo_set(tmp_path, num_images=5, side=256)
    cfg = {"data": {"root": str(tmp_path), "crop_size": [64, 48],
                    "sets": {"p": {"type": "spin_npz", "npz": str(npz), "images": str(tmp_path)}}}}
    dataset = build_dataset("p", "train", cfg)
    assert len(dataset) == 5 and max(dataset.annotation(0).img_size) == 256
    assert dataset[3]["img"].shape == (3, 64, 48)
    assert workers_needed(2000, 400) == 5 and workers_needed(2001, 400) == 6
    with pytest.raises(ValueError):
        workers_needed(100, 0)


def _run(*args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_bench_data_cli(tiny_synthetic_root, tmp_path):
    proc = _run("tools/bench_data.py", "--samples", "8", "--batch-size", "4", "--data-root", tiny_synthetic_root,
                "--json", tmp_path / "b.json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    readers = [r["reader"] for r in report["rows"]]
    assert readers == ["photos_512 (spin_npz)", "photos_512 (shards)", "synthetic_body (spin_npz)",
                       "synthetic_hand (freihand)"]
    assert all(r["samples_per_s"] > 0 for r in report["rows"]) and "goal: >= 400" in proc.stdout
    assert set(report["decoders_ms"]) == {"read_file", "opencv", "simplejpeg", "opencv_reduced2"}


def test_gpu_check_runs_tiny_on_the_cpu(tiny_synthetic_root, tmp_path):
    proc = _run("tools/gpu_check.py", "--device", "cpu", "--tiny", "--presets", "configs/hand/prom.yaml",
                "--data-root", tiny_synthetic_root, "--out", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["ok"] and report["environment"]["device"] == "cpu"
    assert report["parity"]["train_step"]["loss_rel_diff"] == 0.0   # CPU against itself
    hand = report["presets"]["configs/hand/prom.yaml"]
    assert hand["body_model"] == "open-mano-right" and hand["steps"] == 2 and hand["demo"]["ok"]
    assert {"pa_mpjpe_mm", "pa_mpvpe_mm"} <= set(hand["eval"])
    assert (tmp_path / "hand/prom/demo/astronaut/overlay.png").is_file()
    proc = _run("tools/gpu_check.py", "--device", "cpu", "--tiny", "--presets", "configs/hand/prom.yaml",
                "--data-root", tmp_path / "missing", "--out", tmp_path / "b", "--no-demo")
    assert proc.returncode == 1
    failed = json.loads((tmp_path / "b/gpu_check.json").read_text())["presets"]["configs/hand/prom.yaml"]
    assert not failed["ok"] and "missing" in failed["error"]


def test_jitter_folded_into_normalisation_equals_jitter_then_normalise():
    from hmr.data.augment import jitter_table, occlusion_noise, occlude
    image = skimage.data.astronaut()[:64, :48]
    gain = (0.7, 1.2, 1.45)
    folded = normalize_image(image, jitter_table(gain))
    assert torch.equal(folded, normalize_image(color_jitter(image, gain)))
    # the occluder's noise is pasted unjittered, with the same random draws as occlude()
    box = (0.2, 0.3, 0.5, 0.4)
    rows, cols, noise = occlusion_noise(image.shape[:2], box, np.random.default_rng(5))
    folded[:, rows, cols] = normalize_image(noise)
    expected = normalize_image(occlude(color_jitter(image, gain), box, np.random.default_rng(5)))
    assert torch.equal(folded, expected)
