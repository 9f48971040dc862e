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


def test_masked_mean_is_a_weighted_mean_at_low_total_confidence():
    # one keypoint at confidence 0.3 with squared error 0.01: the loss is 0.01, not 0.3 * 0.01
    target = torch.tensor([[[101.0, 100.0, 0.3], [0.0, 0.0, 0.0]]])
    pred = torch.tensor([[[100.0, 100.0], [50.0, 50.0]]])
    center, size = torch.tensor([[100.0, 100.0]]), torch.tensor([20.0])
    assert torch.allclose(losses.keypoint2d_loss(pred, target, center, size), torch.tensor(0.01))
    gt = torch.zeros(1, 3, 4)
    gt[0, :, 3] = torch.tensor([0.2, 0.2, 0.1])  # roots 0, 1 labelled with low confidence
    pred3d = torch.zeros(1, 3, 3)
    pred3d[0, 2, 0] = 0.3
    expected = (losses.root_align(pred3d, (0, 1)) - losses.root_align(gt[..., :3], (0, 1))).abs().sum(-1)
    expected = (expected * gt[..., 3]).sum() / gt[..., 3].sum()
    assert torch.allclose(losses.joints3d_loss(pred3d, gt, root=(0, 1)), expected)


def test_masked_mean_with_tiny_weights_is_finite_and_zero_weights_give_zero():
    values = torch.tensor([2.0, 4.0], requires_grad=True)
    tiny = losses._masked_mean(values, torch.tensor([1e-6, 0.0]))
    assert torch.isfinite(tiny) and torch.allclose(tiny, torch.tensor(2.0))
    zero = losses._masked_mean(values, torch.zeros(2))
    assert zero.item() == 0.0
    zero.backward()
    assert torch.isfinite(values.grad).all() and values.grad.abs().sum() == 0
