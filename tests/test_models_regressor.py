"""hmr.models heads and regressor: IEF loop, small-gain init, transformer head, factory, seeds, gradients."""
import logging
import math

import numpy as np
import pytest
import torch

from hmr.models import CliffHead, Regressor, TransformerHead, build_regressor, resolve_model_config
from hmr.models.transformer_head import sincos_position_embedding_2d

SMALL = [64, 48]
TINY = {"backbone": "resnet_tiny", "input_size": SMALL, "hidden": 64,
        "transformer": {"dim": 32, "depth": 2, "heads": 4}}


def _mean(num_joints, dim):
    return torch.randn(num_joints, dim)


def _batch(batch=2):
    return torch.randn(batch, 3, *SMALL), torch.randn(batch, 3)


@pytest.mark.parametrize("head", ["cliff", "transformer"])
@pytest.mark.parametrize("num_joints,dim", [(24, 9), (16, 6)])  # body PRoM, hand 6D
def test_regressor_output_shapes(head, num_joints, dim):
    model = build_regressor({**TINY, "head": head}, num_joints, dim, init_pose_params=_mean(num_joints, dim))
    out = model(*_batch(3))
    assert out["pose_params"].shape == (3, num_joints, dim)
    assert out["betas"].shape == (3, 10) and out["cam"].shape == (3, 3)
    assert len(out["iterations"]) == (3 if head == "cliff" else 1)
    for step in out["iterations"]:
        assert {k: v.shape for k, v in step.items()} == {k: out[k].shape for k in step}
    assert out["pose_params"] is out["iterations"][-1]["pose_params"]
    assert (model.num_joints, model.rep_dim, model.num_betas) == (num_joints, dim, 10)


@pytest.mark.parametrize("head,iterations", [("cliff", 1), ("cliff", 5), ("transformer", 3)])
def test_iteration_count_and_feedback(head, iterations):
    model = build_regressor({**TINY, "head": head, "iterations": iterations, "dropout": 0.0}, 4, 9,
                            init_pose_params=_mean(4, 9)).eval()
    out = model(*_batch())
    assert len(out["iterations"]) == iterations
    for previous, current in zip(out["iterations"], out["iterations"][1:]):
        assert not torch.equal(previous["pose_params"], current["pose_params"])


def test_cliff_head_matches_handwritten_ief():
    torch.manual_seed(1)
    head = CliffHead(feature_dim=5, num_joints=2, rep_dim=3, num_betas=4, iterations=3, hidden=7).eval()
    for p in head.parameters():  # large weights so the oracle comparison is not dominated by the mean
        torch.nn.init.normal_(p)
    feat, bbox = torch.randn(2, 5), torch.randn(2, 3)
    init = {"pose_params": torch.randn(2, 2, 3), "betas": torch.randn(2, 4), "cam": torch.randn(2, 3)}
    fc1, fc2 = head.mlp[0], head.mlp[3]
    d = head.decoder
    pose, betas, cam = init["pose_params"].reshape(2, 6).numpy(), init["betas"].numpy(), init["cam"].numpy()
    w = {name: getattr(layer, attr).detach().numpy().astype(np.float64) for name, layer in
         [("1", fc1), ("2", fc2), ("p", d.decpose), ("s", d.decshape), ("c", d.deccam)]
         for attr in ("weight",)}
    b = {name: layer.bias.detach().numpy().astype(np.float64) for name, layer in
         [("1", fc1), ("2", fc2), ("p", d.decpose), ("s", d.decshape), ("c", d.deccam)]}
    expected = []
    for _ in range(3):
        x = np.concatenate([feat.numpy(), bbox.numpy(), pose, betas, cam], axis=1)
        h = (x @ w["1"].T + b["1"]) @ w["2"].T + b["2"]  # eval mode: dropout is the identity, no activation
        pose, betas, cam = pose + h @ w["p"].T + b["p"], betas + h @ w["s"].T + b["s"], cam + h @ w["c"].T + b["c"]
        expected.append(pose.reshape(2, 2, 3))
    history = head(feat, bbox, init)
    for step, want in zip(history, expected):
        np.testing.assert_allclose(step["pose_params"].detach().numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(history[-1]["cam"].detach().numpy(), cam, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("head", ["cliff", "transformer"])
def test_untrained_output_starts_at_mean(head):
    mean_pose, mean_betas, mean_cam = _mean(24, 9), torch.randn(10), torch.tensor([0.9, 0.1, -0.2])
    model = build_regressor({**TINY, "head": head, "hidden": 1024}, 24, 9, init_pose_params=mean_pose,
                            init_betas=mean_betas, init_cam=mean_cam).eval()
    out = model(*_batch(4))
    deviation = max((out["pose_params"] - mean_pose).abs().max(), (out["betas"] - mean_betas).abs().max(),
                    (out["cam"] - mean_cam).abs().max())
    assert 0 < deviation < 0.1
    # Oracle for the gain: Xavier-uniform bound = gain * sqrt(6 / (fan_in + fan_out)), zero biases.
    decpose = model.head.decoder.decpose
    bound = 0.01 * math.sqrt(6 / sum(decpose.weight.shape))
    assert decpose.weight.abs().max() <= bound and decpose.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(decpose.bias) == 0


def test_sincos_position_embedding_matches_formula():
    height, width, dim = 3, 2, 8
    emb = sincos_position_embedding_2d(height, width, dim)
    assert emb.shape == (height * width, dim)
    for index in range(height * width):
        y, x = divmod(index, width)
        for k in range(dim // 4):
            w = 10000 ** (-k / (dim // 4))
            want = [math.sin(y * w), math.cos(y * w), math.sin(x * w), math.cos(x * w)]
            got = [emb[index, k + q * dim // 4].item() for q in range(4)]
            np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_position_embedding_2d(2, 2, 6)


def test_transformer_head_uses_token_positions():
    head = TransformerHead(feature_dim=16, num_joints=3, rep_dim=6, dim=32, depth=1, heads=4).eval()
    init = {"pose_params": torch.zeros(2, 3, 6), "betas": torch.zeros(2, 10), "cam": torch.zeros(2, 3)}
    features, bbox = torch.randn(2, 16, 4, 3), torch.randn(2, 3)
    out = head(features, bbox, init)[-1]["pose_params"]
    assert out.shape == (2, 3, 6)
    flipped = head(features.flip(-1), bbox, init)[-1]["pose_params"]
    assert not torch.allclose(out, flipped)  # position embedding breaks the permutation invariance of attention
    with pytest.raises(ValueError, match=r"\(B, C, h, w\)"):
        head(torch.randn(2, 16), bbox, init)
    with pytest.raises(ValueError, match="divisible"):
        TransformerHead(16, 3, 6, dim=30, heads=4)


def test_seed_determinism():
    def build_and_run(seed):
        torch.manual_seed(seed)
        model = build_regressor({**TINY, "head": "transformer"}, 16, 9, init_pose_params=torch.zeros(16, 9))
        torch.manual_seed(100)
        return model(*_batch())["pose_params"]

    torch.testing.assert_close(build_and_run(5), build_and_run(5), rtol=0, atol=0)
    assert not torch.allclose(build_and_run(5), build_and_run(6))


@pytest.mark.parametrize("cfg", [
    {**TINY, "head": "cliff"}, {**TINY, "head": "transformer", "iterations": 2},
    {**TINY, "backbone": "vit_small_patch16_224", "head": "cliff"},
    {**TINY, "backbone": "vit_small_patch16_224", "head": "transformer"}])
def test_gradients_reach_every_parameter(cfg):
    model = build_regressor(cfg, 4, 9, init_pose_params=_mean(4, 9)).train()
    # timm ResNets zero-initialise each block's last BN scale, which blocks the residual branch's gradient
    # until the first step; give those scales a value so every parameter must receive signal.
    for name, param in model.named_parameters():
        if name.endswith("bn2.weight"):
            torch.nn.init.ones_(param)
    out = model(*_batch())
    loss = sum(step[key].square().sum() for step in out["iterations"] for key in ("pose_params", "betas", "cam"))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert not any(b.requires_grad for b in (model.init_pose_params, model.init_betas, model.init_cam))


def test_state_dict_round_trip_includes_mean():
    model = build_regressor(TINY, 4, 6, init_pose_params=_mean(4, 6), init_cam=[1.0, 0.0, 0.0]).eval()
    assert {"init_pose_params", "init_betas", "init_cam"} <= set(model.state_dict())
    clone = build_regressor(TINY, 4, 6, init_pose_params=torch.zeros(4, 6)).eval()
    clone.load_state_dict(model.state_dict())
    img, bbox = _batch()
    torch.testing.assert_close(clone(img, bbox)["cam"], model(img, bbox)["cam"])


def test_mean_pose_from_encode_callable():
    orient = torch.tensor([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]])
    six_d = lambda R: R[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6)  # first two columns
    model = build_regressor(TINY, 16, 6, encode=six_d, init_global_orient=orient)
    torch.testing.assert_close(model.init_pose_params[0], torch.tensor([1.0, 0, 0, 0, -1, 0]))
    torch.testing.assert_close(model.init_pose_params[1:], torch.tensor([1.0, 0, 0, 0, 1, 0]).expand(15, 6))
    torch.testing.assert_close(model.init_betas, torch.zeros(10))
    torch.testing.assert_close(model.init_cam, torch.tensor([0.9, 0.0, 0.0]))


def test_bbox_info_switch():
    model = build_regressor({**TINY, "use_bbox_info": False}, 4, 9, init_pose_params=_mean(4, 9))
    img, _ = _batch()
    assert model(img)["cam"].shape == (2, 3)
    with_bbox = build_regressor(TINY, 4, 9, init_pose_params=_mean(4, 9))
    with pytest.raises(ValueError, match="bbox_info must be"):
        with_bbox(img)
    with pytest.raises(ValueError, match="bbox_info must be"):
        with_bbox(img, torch.zeros(2, 4))


def test_build_regressor_errors(caplog):
    with pytest.raises(ValueError, match="unknown model config key 'hiden'"):
        build_regressor({"hiden": 3}, 4, 9, init_pose_params=torch.zeros(4, 9))
    with pytest.raises(ValueError, match="unknown model.transformer keys"):
        resolve_model_config({"transformer": {"layers": 3}})
    with pytest.raises(ValueError, match="model.head must be one of"):
        resolve_model_config({"head": "mlp"})
    with caplog.at_level(logging.WARNING, logger="hmr.models.regressor"):
        assert torch.count_nonzero(build_regressor(TINY, 4, 9).init_pose_params) == 0
    assert "starts from zeros" in caplog.text
    with pytest.raises(ValueError, match=r"\(4, 9\)"):
        build_regressor(TINY, 4, 9, init_pose_params=torch.zeros(4, 6))
    with pytest.raises(ValueError, match="NaN"):
        build_regressor(TINY, 4, 9, init_pose_params=torch.full((4, 9), float("nan")))
    with pytest.raises(ValueError, match="init_betas"):
        build_regressor(TINY, 4, 9, init_pose_params=torch.zeros(4, 9), init_betas=torch.zeros(11))
    with pytest.raises(ValueError, match="init_global_orient"):
        build_regressor(TINY, 4, 9, encode=lambda R: R.reshape(4, 9), init_global_orient=torch.zeros(3))
    with pytest.raises(ValueError, match="iterations"):
        CliffHead(8, 4, 9, iterations=0)
    assert isinstance(build_regressor(TINY, 4, 9, init_pose_params=torch.zeros(4, 9)), Regressor)
