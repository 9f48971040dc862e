"""hmr.models.mediapipe.MediaPipeEncoder: the timm-like backbone view of the converted landmark networks.

Needs the converted files from ``bash scripts/setup_env.sh`` (missing: the tests fail and say so).
"""
import cv2
import pytest
import torch
from skimage import data

from hmr.data.crop import normalize_image
from hmr.models.backbone import FlattenGrid, stage_with_stride
from hmr.models.mediapipe import ENCODERS, MediaPipeEncoder, load_network

STAGES = {  # (reduction, channels) per stage, the decoder stage last
    "blazepose_full": [(2, 64), (4, 144), (8, 192), (16, 528), (32, 288), (64, 288), (128, 288), (4, 48)],
    "mediapipe_hand": [(2, 64), (4, 144), (8, 240), (16, 672), (32, 1152)],
}
GRIDS_128x96 = {
    "blazepose_full": [(64, 48), (32, 24), (16, 12), (8, 6), (4, 3), (2, 2), (1, 1), (32, 24)],
    "mediapipe_hand": [(64, 48), (32, 24), (16, 12), (8, 6), (4, 3)],
}


def crop(size):
    """The astronaut photo resized to ``size`` (H, W), ImageNet-normalised like the project's crops."""
    image = cv2.resize(data.astronaut(), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return image, normalize_image(image)[None]


@pytest.mark.parametrize("name", list(ENCODERS))
def test_stages_at_native_and_small_sizes(name, encoder_weights):
    enc = MediaPipeEncoder(name).eval()
    assert [(f["reduction"], f["num_chs"]) for f in enc.feature_info] == STAGES[name]
    assert [f["kind"] for f in enc.feature_info].count("decoder") == (name == "blazepose_full")
    assert all(f["module"].startswith("net.layers.t") for f in enc.feature_info)
    indices = list(range(len(enc.feature_info)))
    with torch.no_grad():
        native = enc.forward_intermediates(crop((256, 256))[1], indices, intermediates_only=True)
        small = enc.forward_intermediates(crop((128, 96))[1], indices, intermediates_only=True)
        final, maps = enc.forward_intermediates(crop((128, 96))[1], [0, 2])
        pooled = enc(crop((128, 96))[1])
    for (stride, chs), m in zip(STAGES[name], native):
        assert m.shape == (1, chs, 256 // stride, 256 // stride)
    assert [tuple(m.shape[2:]) for m in small] == GRIDS_128x96[name]
    assert [m.shape for m in maps] == [small[0].shape, small[2].shape]
    assert final.shape[1] == enc.num_features and pooled.shape == (1, enc.num_features)
    torch.testing.assert_close(pooled, final.mean(dim=(2, 3)))
    for size in [(192, 192), (128, 128), (200, 150), (33, 47)]:  # any size: SAME padding per size
        with torch.no_grad():
            maps = enc.forward_intermediates(torch.zeros(1, 3, *size), indices, intermediates_only=True)
        assert all(torch.isfinite(m).all() for m in maps)


def test_input_is_imagenet_normalised_and_mapped_to_the_networks_range(encoder_weights):
    enc = MediaPipeEncoder("blazepose_full").eval()
    image, x = crop((256, 256))
    net = load_network("pose_landmark_full")
    rgb01 = torch.from_numpy(image).float().permute(2, 0, 1)[None] / 255.0
    with torch.no_grad():
        expected = net.tensors(rgb01, ["t252", "t279"])
        got = enc.forward_intermediates(x, [3, 7], intermediates_only=True)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_prune_drops_the_unused_ops_and_every_kept_parameter_learns(encoder_weights):
    enc = MediaPipeEncoder("blazepose_full")
    total = sum(p.numel() for p in enc.parameters())
    assert enc.prune_intermediate_layers([1, 3]) == [1, 3]
    assert [f["reduction"] for f in enc.feature_info] == [2, 4, 8, 16]
    assert enc.num_features == 528 and sum(p.numel() for p in enc.parameters()) < total / 3
    x = crop((128, 96))[1].requires_grad_(True)
    maps = enc.forward_intermediates(x, [3], intermediates_only=True)
    maps[0].square().mean().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(IndexError):
        enc.forward_intermediates(x, [4])


def test_works_with_the_backbone_factorys_stage_helpers(encoder_weights):
    enc = MediaPipeEncoder("mediapipe_hand")
    stage = stage_with_stride(enc, "mediapipe_hand", 16)
    flat = FlattenGrid.for_model(enc, "mediapipe_hand", (128, 96), 16, 32)
    assert stage == flat.stage == 3 and flat.grid == (8, 6)
    assert [f["reduction"] for f in enc.feature_info] == [2, 4, 8, 16]
    with torch.no_grad():
        out = flat(enc.forward_intermediates(crop((128, 96))[1], [flat.stage], intermediates_only=True)[0])
    assert out.shape == (1, 32 * 8 * 6)


def test_random_init_and_errors(encoder_weights):
    trained = MediaPipeEncoder("mediapipe_hand", decoder_stage=False)
    fresh = MediaPipeEncoder("mediapipe_hand", pretrained=False)
    assert [f["num_chs"] for f in fresh.feature_info] == [f["num_chs"] for f in trained.feature_info]
    a, b = trained.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys() and not torch.equal(a["net.layers.t104.weight"], b["net.layers.t104.weight"])
    with torch.no_grad():
        maps = fresh.forward_intermediates(crop((128, 96))[1], [0, 4], intermediates_only=True)
    assert all(torch.isfinite(m).all() and m.std() > 0 for m in maps)
    assert len(MediaPipeEncoder("blazepose_full", decoder_stage=False).feature_info) == 7
    with pytest.raises(KeyError, match="unknown MediaPipe encoder"):
        MediaPipeEncoder("blazepose_heavy")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        trained(torch.zeros(1, 1, 64, 64))
