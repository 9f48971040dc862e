"""hmr.models backbone factory and checkpoint loading."""
import timm
import torch
import torch.nn.functional as F
import pytest

from hmr.models import CheckpointMismatchError, build_backbone, build_regressor

SMALL = (64, 48)


@pytest.mark.parametrize("name,expected_dim,stride", [
    ("resnet_tiny", 64, 32), ("cnn_tiny", 64, 32), ("resnet18", 512, 32), ("vit_small_patch16_224", 384, 16)])
def test_backbone_shapes_pooled_and_spatial(name, expected_dim, stride):
    img = torch.randn(1, 3, *SMALL)
    pooled_net, dim = build_backbone(name, input_size=SMALL)
    spatial_net, dim_spatial = build_backbone(name, input_size=SMALL, spatial=True)
    assert dim == dim_spatial == expected_dim == pooled_net.feature_dim
    spatial_net.load_state_dict(pooled_net.state_dict())
    pooled_net.eval(), spatial_net.eval()
    with torch.no_grad():
        pooled, grid = pooled_net(img), spatial_net(img)
    assert pooled.shape == (1, dim)
    assert grid.shape == (1, dim, -(-SMALL[0] // stride), -(-SMALL[1] // stride))  # ceil: padded convolutions
    # Both CNNs and the ViT (no class token, avg pool) pool by averaging the spatial features.
    torch.testing.assert_close(pooled, grid.mean(dim=(2, 3)), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name,expected_dim,stride", [
    ("resnet34", 512, 32), ("resnet50", 2048, 32), ("vit_base_patch16_224", 768, 16), ("hrnet_w48", 2048, 32)])
def test_big_backbone_shapes(name, expected_dim, stride):
    size = (256, 192)
    for spatial in (False, True):
        net, dim = build_backbone(name, input_size=size, spatial=spatial)
        with torch.no_grad():
            out = net.eval()(torch.randn(1, 3, *size))
        expected = (1, dim, size[0] // stride, size[1] // stride) if spatial else (1, dim)
        assert dim == expected_dim and out.shape == expected


def test_backbone_input_errors():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("no_such_net")
    with pytest.raises(ValueError, match="input_size"):
        build_backbone("resnet_tiny", input_size=(64,))
    vit, _ = build_backbone("vit_small_patch16_224", input_size=SMALL)
    with pytest.raises(ValueError, match="built for input size"):
        vit(torch.randn(1, 3, 48, 64))
    net, _ = build_backbone("resnet_tiny")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.randn(1, 1, 32, 32))


def _perturbed_state(name="resnet_tiny", **kw):
    net, _ = build_backbone(name, input_size=SMALL, **kw)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    return net, net.model.state_dict()


@pytest.mark.parametrize("wrap,prefix_given", [
    (lambda s: s, None),
    (lambda s: {"model": {f"backbone.{k}": v for k, v in s.items()}, "epoch": torch.tensor(3)}, "backbone."),
    (lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}}, None),
    (lambda s: {"fc.weight": torch.zeros(5, 64), "fc.bias": torch.zeros(5), **s}, None),  # classifier ignored
])
def test_checkpoint_round_trip(tmp_path, wrap, prefix_given):
    source, state = _perturbed_state()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(state), path)
    loaded, _ = build_backbone("resnet_tiny", checkpoint=path, input_size=SMALL, checkpoint_prefix=prefix_given)
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    img = torch.randn(2, 3, *SMALL)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(img), source.eval()(img))


def test_checkpoint_from_regressor_state_dict(tmp_path):
    reg = build_regressor({"backbone": "resnet_tiny", "input_size": list(SMALL)}, 4, 9,
                          init_pose_params=torch.zeros(4, 9))
    with torch.no_grad():
        next(reg.backbone.parameters()).add_(1.0)
    torch.save({"model": reg.state_dict()}, tmp_path / "reg.pt")  # keys start with "backbone.model."
    net, _ = build_backbone("resnet_tiny", checkpoint=tmp_path / "reg.pt")
    torch.testing.assert_close(next(net.parameters()), next(reg.backbone.parameters()))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_backbone("resnet_tiny", checkpoint=tmp_path / "missing.pth")
    _, state = _perturbed_state("resnet18")
    torch.save(state, tmp_path / "r18.pth")
    with pytest.raises(CheckpointMismatchError, match="shape mismatches") as err:
        build_backbone("resnet_tiny", checkpoint=tmp_path / "r18.pth")
    assert "conv1.weight" in str(err.value)
    _, tiny = _perturbed_state()
    partial = {k: v for k, v in tiny.items() if not k.startswith("layer4.")}
    partial["extra.weight"] = torch.zeros(3)
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \[layer4\.") as err:
        build_backbone("resnet_tiny", checkpoint=tmp_path / "partial.pth")
    assert "1 unexpected keys [extra.weight]" in str(err.value)
    torch.save(tiny, tmp_path / "tiny.pth")
    with pytest.raises(CheckpointMismatchError, match="prefix 'backbone.'"):
        build_backbone("resnet_tiny", checkpoint=tmp_path / "tiny.pth", checkpoint_prefix="backbone.")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state_dict"):
        build_backbone("resnet_tiny", checkpoint=tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        build_backbone("resnet_tiny", checkpoint=tmp_path / "junk.pth")


def test_vit_checkpoint_with_class_token_is_adapted(tmp_path):
    # An ImageNet-style ViT: class token, square 4x4 patch grid; the target model has no class token, 4x3 grid.
    src = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, img_size=64)
    state = src.state_dict()
    torch.save(state, tmp_path / "vit.pth")
    net, _ = build_backbone("vit_small_patch16_224", checkpoint=tmp_path / "vit.pth", input_size=SMALL)
    grid = state["pos_embed"][:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(4, 3), mode="bicubic", antialias=True, align_corners=False)
    expected = expected.permute(0, 2, 3, 1).reshape(1, 12, -1)
    torch.testing.assert_close(net.model.pos_embed, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net.model.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"])


def test_feature_dim_matches_output_for_models_with_a_pre_logits_head():
    """MobileNetV3's pooled vector (1024) is wider than its feature map (576): feature_dim must say so."""
    import torch

    from hmr.models import build_backbone
    for spatial in (False, True):
        backbone, dim = build_backbone("mobilenetv3_small_100", input_size=(64, 48), spatial=spatial)
        out = backbone(torch.randn(1, 3, 64, 48))
        assert out.shape[1] == dim


@pytest.mark.parametrize("name", ["resnet_tiny", "mobilenetv3_small_100"])
def test_flatten_pooling_keeps_the_stride16_layout(name):
    """pooling="flatten": the stride-16 map, 1x1-reduced, flattened channel-major — checked against the same
    weights run through timm's own stage-by-stage features and a hand-written reduction."""
    net, dim = build_backbone(name, input_size=SMALL, pooling="flatten", flatten_stride=16, flatten_channels=5)
    grid_hw = (-(-SMALL[0] // 16), -(-SMALL[1] // 16))
    assert dim == net.feature_dim == 5 * grid_hw[0] * grid_hw[1]
    net.eval()
    img = torch.randn(2, 3, *SMALL)
    with torch.no_grad():
        out = net(img)
        grid = net.model.forward_intermediates(img, indices=[net.flatten.stage], intermediates_only=True)[-1]
        conv, bn = net.flatten.reduce[0], net.flatten.reduce[1]
        reduced = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], grid)
        reduced = (reduced - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
        expected = F.relu(reduced * bn.weight[:, None, None] + bn.bias[:, None, None]).flatten(1)
    assert out.shape == (2, dim) and grid.shape[-2:] == grid_hw
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    # Moving the content moves the features: pooled vectors are (nearly) shift-blind, flattened ones are not.
    shifted = torch.roll(img, shifts=16, dims=3)
    with torch.no_grad():
        assert (net(shifted) - out).abs().max() > 1e-3


def test_flatten_pooling_prunes_unused_stages_and_every_parameter_learns():
    net, _ = build_backbone("resnet_tiny", input_size=SMALL, pooling="flatten")
    assert not hasattr(net.model, "layer4") or len(list(net.model.layer4.parameters())) == 0
    for pname, param in net.named_parameters():
        if pname.endswith("bn2.weight"):  # zero-initialised residual scales block the gradient before step 1
            torch.nn.init.ones_(param)
    net(torch.randn(2, 3, *SMALL)).square().sum().backward()
    for pname, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


def test_flatten_pooling_errors():
    with pytest.raises(ValueError, match="pooling must be one of"):
        build_backbone("resnet_tiny", input_size=SMALL, pooling="max")
    with pytest.raises(ValueError, match="no stage with stride 64"):
        build_backbone("resnet_tiny", input_size=SMALL, pooling="flatten", flatten_stride=64)
    net, _ = build_backbone("resnet_tiny", input_size=SMALL, pooling="flatten")
    with pytest.raises(ValueError, match="feed crops of model.input_size"):
        net(torch.randn(1, 3, 96, 96))
