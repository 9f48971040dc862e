"""2D keypoint heatmaps: soft-argmax, the heatmap loss, the cell geometry and the regressor wiring."""
import math
from pathlib import Path

import pytest
import torch

from hmr import losses
from hmr.data.crop import to_crop_coordinates
from hmr.models import build_backbone, build_regressor
from hmr.models.keypoint_head import HeatmapHead, soft_argmax

CROP = (96, 72)


def _head(num_keypoints=3, stride=8):
    grid = (-(-CROP[0] // stride), -(-CROP[1] // stride))
    return HeatmapHead(1, 4, 6, num_keypoints, grid, stride, CROP)


def test_cell_centres_match_crop_coordinates():
    """A keypoint at the centre of cell (i, j) in crop pixels lands on (grid_x[j], grid_y[i])."""
    head = _head()
    center, scale = torch.tensor([[500.0, 300.0]]), torch.tensor([1.5])
    bbox = 200.0 * 1.5
    for i, j in [(0, 0), (5, 3), (11, 8)]:
        u, v = (j + 0.5) * 8, (i + 0.5) * 8                          # crop pixels
        full = center + (torch.tensor([[u, v]]) - torch.tensor([CROP[1] / 2, CROP[0] / 2])) * bbox / CROP[0]
        xy = to_crop_coordinates(full[:, None], center, scale, CROP)[0, 0]
        torch.testing.assert_close(xy, torch.stack([head.grid_x[j], head.grid_y[i]]))
    assert head.cell == pytest.approx(8 / 48)


def test_soft_argmax_of_a_peak_and_of_a_flat_map():
    head = _head()
    logits = torch.full((2, 3, 12, 9), -1e4)
    logits[0, 1, 7, 2] = 0.0
    xy = head.coordinates(logits)
    torch.testing.assert_close(xy[0, 1], torch.stack([head.grid_x[2], head.grid_y[7]]))
    flat = soft_argmax(torch.zeros(1, 1, 12, 9), head.grid_x, head.grid_y)
    torch.testing.assert_close(flat[0, 0], torch.stack([head.grid_x.mean(), head.grid_y.mean()]))


def test_heatmap_loss_is_cross_entropy_with_a_gaussian_and_is_masked():
    head = _head(num_keypoints=2)
    target_xy = torch.tensor([[[0.1, -0.3], [0.5, 0.9]]])
    sigma = head.cell
    gx, gy = torch.meshgrid(head.grid_x, head.grid_y, indexing="xy")  # (h, w)
    gauss = torch.stack([torch.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * sigma ** 2)) for x, y in target_xy[0]])
    gauss = gauss / gauss.sum(dim=(1, 2), keepdim=True)
    entropy = -(gauss * gauss.log()).sum(dim=(1, 2))
    visible = torch.tensor([[True, True]])
    # logits = log(target) reach the minimum, the target's entropy; a flat map pays log(cells) instead
    best = losses.heatmap_loss(gauss.log()[None], target_xy, visible, head.grid_x, head.grid_y, sigma)
    torch.testing.assert_close(best, entropy.mean())
    flat = losses.heatmap_loss(torch.zeros(1, 2, 12, 9), target_xy, visible, head.grid_x, head.grid_y, sigma)
    torch.testing.assert_close(flat, torch.tensor(math.log(12 * 9)))
    # an invisible keypoint contributes nothing, whatever its heatmap says
    logits = gauss.log()[None].clone()
    logits[0, 1] = torch.randn(12, 9)
    only_first = losses.heatmap_loss(logits, target_xy, torch.tensor([[True, False]]), head.grid_x, head.grid_y,
                                     sigma)
    torch.testing.assert_close(only_first, entropy[0])
    none = losses.heatmap_loss(logits.requires_grad_(), target_xy, torch.tensor([[False, False]]), head.grid_x,
                               head.grid_y, sigma)
    assert none.item() == 0.0 and none.requires_grad


def test_backbone_and_regressor_with_heatmaps():
    backbone, dim = build_backbone("resnet_tiny", input_size=CROP, pooling="flatten", heatmap_keypoints=5)
    plain, plain_dim = build_backbone("resnet_tiny", input_size=CROP, pooling="flatten")
    assert dim == plain_dim + 10
    features, logits = backbone(torch.randn(2, 3, *CROP))
    assert features.shape == (2, dim) and logits.shape == (2, 5, 12, 9)
    torch.testing.assert_close(features[:, -10:].view(2, 5, 2), backbone.keypoints.coordinates(logits))

    cfg = {"backbone": "resnet_tiny", "input_size": list(CROP), "pooling": "flatten", "hidden": 32,
           "heatmaps": {"enabled": True, "stride": 8}}
    model = build_regressor(cfg, num_joints=4, rep_dim=9, num_keypoints=5, init_pose_params=torch.zeros(4, 9))
    out = model(torch.randn(2, 3, *CROP), torch.zeros(2, 3))
    assert out["heatmaps"].shape == (2, 5, 12, 9) and out["pose_params"].shape == (2, 4, 9)
    assert model.heatmap_head is model.backbone.keypoints
    # the coordinates feed the head, so the regression losses reach the heatmap convolutions too
    out["pose_params"].square().sum().backward()
    assert model.backbone.keypoints.mix[-1].weight.grad.abs().sum() > 0


def test_heatmap_config_errors():
    with pytest.raises(ValueError, match="pooling=flatten"):
        build_backbone("resnet_tiny", input_size=CROP, heatmap_keypoints=5)
    with pytest.raises(ValueError, match="finer than the flatten stride"):
        build_backbone("resnet_tiny", input_size=CROP, pooling="flatten", heatmap_keypoints=5, heatmap_stride=16)
    with pytest.raises(ValueError, match="num_keypoints"):
        build_regressor({"backbone": "resnet_tiny", "pooling": "flatten", "heatmaps": {"enabled": True}},
                        num_joints=4, rep_dim=9, init_pose_params=torch.zeros(4, 9))


def test_trainer_refuses_a_heatmap_loss_without_a_heatmap_head(tmp_path):
    from conftest import TINY_TRAIN_OVERRIDES
    from hmr.config import load_config
    from hmr.engine.trainer import Trainer
    preset = Path(__file__).resolve().parents[1] / "configs" / "body_cpu.yaml"
    cfg = load_config(str(preset), [*TINY_TRAIN_OVERRIDES, f"data.root={tmp_path}", "loss.heatmap=1.0"])
    with pytest.raises(ValueError, match="model.heatmaps.enabled"):
        Trainer(cfg, tmp_path / "run")
