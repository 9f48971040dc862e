"""Training the top of a frozen landmark network (``model.landmarks.train_from``) with its own 2D landmark loss
(``loss.landmarks``): the landmark -> joint-set weights, the loss, and a cached training run."""
import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN_OVERRIDES
from hmr.body.joint_sets import get_joint_set
from hmr.config import load_config
from hmr.engine.keypoint_terms import LandmarkTerm
from hmr.engine.trainer import Trainer
from hmr.keypoints.mapping import landmark_weights, map_body, map_hand


@pytest.mark.parametrize("joint_set", ["spin24", "openpose25", "freihand21", "mano16"])
def test_landmark_weights_reproduce_the_keypoint_maps(joint_set):
    """Oracle: :func:`map_body` / :func:`map_hand` on the same landmarks."""
    hand = joint_set in ("freihand21", "mano16")
    count = 21 if hand else 39  # BlazePose full: 33 named landmarks + 6 auxiliary ones
    landmarks = np.random.default_rng(0).normal(size=(count, 2))
    weights = landmark_weights(joint_set, count)
    mapped = map_hand(landmarks, 1.0, joint_set) if hand else map_body(landmarks[:33], np.ones(33), joint_set)
    assert weights.shape == (len(get_joint_set(joint_set)), count)
    np.testing.assert_allclose((weights @ landmarks)[mapped.mask], mapped.keypoints[mapped.mask])
    assert (weights[~mapped.mask] == 0).all() and (weights[:, 33:count if not hand else count] == 0).all()
    with pytest.raises(ValueError, match="needs"):
        landmark_weights(joint_set, 20)


def _hand_model():
    backbone = SimpleNamespace(trainable_top=True, model=SimpleNamespace(num_landmarks=21))
    return SimpleNamespace(backbone=backbone)


def test_landmark_term_is_zero_on_the_labels_and_measures_crop_units():
    gen = torch.Generator().manual_seed(0)
    center, scale = torch.tensor([[300.0, 200.0]]), torch.tensor([1.5])  # a 300 px box
    keypoints = torch.cat([center[:, None] + 100 * torch.randn(1, 21, 2, generator=gen), torch.ones(1, 21, 1)], -1)
    batch = {"keypoints_2d": keypoints, "center": center, "scale": scale}
    landmarks = (keypoints[..., :2] - center[:, None]) / 300.0  # [-0.5, 0.5] of the crop side
    term = LandmarkTerm(_hand_model(), "freihand21")
    assert float(term(landmarks, batch)) == pytest.approx(0.0, abs=1e-6)
    shifted = landmarks + torch.tensor([0.01, 0.0])
    assert float(term(shifted, batch)) == pytest.approx(0.02, rel=1e-4)  # [-1, 1] units: twice the crop fraction
    keypoints[0, 5:, 2] = 0.0  # unlabelled joints do not count
    wrong = landmarks.clone()
    wrong[0, 5:] += 0.3
    assert float(term(wrong, batch)) == pytest.approx(0.0, abs=1e-6)


def test_landmark_loss_needs_a_trainable_top(tmp_path):
    cfg = load_config("configs/hand_cpu.yaml", [f"data.root={tmp_path}", "loss.landmarks=1.0",
                                                "model.landmarks.train_from=null"])
    with pytest.raises(ValueError, match="model.landmarks.train_from"):
        Trainer(cfg, tmp_path / "run")


def test_cached_run_trains_the_top_and_evaluates_like_the_image_path(tiny_synthetic_root, tmp_path, encoder_weights):
    tiny = [o for o in TINY_TRAIN_OVERRIDES if not o.startswith(("model.", "data.crop_size", "train.cache"))]
    overrides = [f"data.root={tiny_synthetic_root}", *tiny, "train.steps=3", "train.eval_every=3",
                 "model.landmarks.train_from=t157", "loss.landmarks=5.0", "train.backbone_lr_scale=0.1",
                 "train.cache_samples=0", "eval.max_samples_during_training=4", "model.hidden=32"]
    trainer = Trainer(load_config("configs/hand_cpu.yaml", overrides), tmp_path / "run")
    features = trainer.model.backbone.model
    before = {k: v.clone() for k, v in features.state_dict().items()}
    summary = trainer.run()
    assert summary["steps"] == 3
    after = features.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("net."))
    assert any(not torch.equal(after[k], v) for k, v in before.items() if k.startswith("top."))
    rows = list(csv.DictReader((tmp_path / "run/log.csv").open()))
    assert float(rows[-1]["landmarks"]) > 0
    from hmr.engine.evaluator import evaluate_config
    cached = trainer._evaluate()["metrics"]
    evaluate = lambda: evaluate_config(trainer.cfg, trainer.model, trainer.body_model,  # noqa: E731
                                       trainer.representation, max_samples=4)["metrics"]
    features.align_with_top = False  # the cache holds the frozen network's alignment pass
    on_images = evaluate()
    assert cached["pa_mpjpe_mm"] == pytest.approx(on_images["pa_mpjpe_mm"], rel=1e-4)
    assert 0.0 < cached["landmark_error_median"] == pytest.approx(on_images["landmark_error_median"], rel=1e-4)
    features.align_with_top = True  # the image path (eval, demo) aligns with the trained top's landmarks
    aligned = evaluate()["landmark_error_median"]
    assert aligned != pytest.approx(cached["landmark_error_median"], rel=1e-5)
    state = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert any(k.startswith("backbone.model.top.") for k in state["model"])


def test_landmark_errors_are_box_fractions_and_skip_unlabelled_samples():
    from hmr.engine.keypoint_terms import landmark_errors
    center, scale = torch.tensor([[300.0, 200.0], [50.0, 50.0]]), torch.tensor([1.5, 0.5])
    keypoints = torch.zeros(2, 21, 3)
    keypoints[0, :, :2] = center[0] + torch.linspace(-100, 100, 21)[:, None]
    keypoints[0, :, 2] = 1.0
    landmarks = (keypoints[..., :2] - center[:, None]) / (200.0 * scale)[:, None, None]
    landmarks[0, :11, 0] += 0.05  # 11 of 21 joints off by 5 % of the box: the median joint is off
    errors = landmark_errors(landmarks, {"keypoints_2d": keypoints, "center": center, "scale": scale}, "freihand21")
    assert float(errors[0]) == pytest.approx(0.05, rel=1e-4) and torch.isnan(errors[1])
