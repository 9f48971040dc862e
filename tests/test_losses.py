"""Loss terms: values against direct formulas, masking, zero-when-unlabelled with a graph."""
import torch

from hmr import losses


def test_rotation_loss_masked_mean():
    pred = torch.randn(3, 2, 3, 3)
    gt = torch.randn(3, 2, 3, 3)
    mask = torch.tensor([1.0, 0.0, 1.0])
    expected = ((pred - gt) ** 2).sum(dim=(-1, -2))[[0, 2]].mean()
    assert torch.allclose(losses.rotation_loss(pred, gt, mask), expected)


def test_unlabelled_gives_zero_with_graph():
    pred = torch.randn(2, 4, 3, 3, requires_grad=True)
    value = losses.rotation_loss(pred, torch.zeros(2, 4, 3, 3), torch.zeros(2))
    assert value.item() == 0.0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() == 0


def test_joints3d_loss_is_translation_invariant_and_weighted():
    gt = torch.randn(2, 5, 3)
    conf = torch.ones(2, 5, 1)
    target = torch.cat([gt, conf], dim=-1)
    shifted = gt + torch.tensor([1.0, -2.0, 3.0])
    assert losses.joints3d_loss(shifted, target, root=(0, 1)).item() < 1e-6
    # a joint with zero confidence does not count
    pred = shifted.clone()
    pred[:, 4] += 10
    target[:, 4, 3] = 0
    assert losses.joints3d_loss(pred, target, root=(0, 1)).item() < 1e-6


def test_keypoint2d_loss_normalised_by_bbox():
    target = torch.tensor([[[110.0, 100.0, 1.0]]])
    pred = torch.tensor([[[100.0, 100.0]]])
    center = torch.tensor([[100.0, 100.0]])
    # 10 px error in a 20 px box = 1 half-box -> squared error 1
    assert torch.allclose(losses.keypoint2d_loss(pred, target, center, torch.tensor([20.0])), torch.tensor(1.0))


def test_weights_validation_and_total():
    weights = losses.LossWeights.from_config({"rotation": 2, "joints3d": 0})
    total = losses.total_loss({"rotation": torch.tensor(1.5), "joints3d": torch.tensor(7.0)}, weights)
    assert total.item() == 3.0
    try:
        losses.LossWeights.from_config({"nope": 1})
    except ValueError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("unknown weight accepted")
