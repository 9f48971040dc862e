"""Training on cached features of a frozen pretrained encoder: the cached path computes exactly what the image
path computes, and a cached run trains, checkpoints and evaluates on images."""
import json

import pytest
import torch

from conftest import TINY_TRAIN_OVERRIDES
from hmr.config import load_config
from hmr.engine.feature_cache import cache_features
from hmr.engine.trainer import Trainer
from hmr.models import build_backbone

FROZEN = ["model.backbone=efficientnet_lite0", "model.pretrained=true", "model.freeze_backbone=true",
          "model.pooling=flatten", "model.landmarks.train_from=null", "loss.landmarks=0.0"]


def test_cached_maps_give_the_image_path_output():
    net, _ = build_backbone("efficientnet_lite0", input_size=(64, 48), pretrained=True, pooling="flatten",
                            freeze=True)
    net.eval()
    images = torch.randn(3, 3, 64, 48)
    dataset = [{"img": img, "bbox_info": torch.zeros(3), "name": "x"} for img in images]
    cached = cache_features(dataset, net, torch.device("cpu"), batch_size=2, progress=False)
    assert len(cached) == 3 and "name" not in cached.fields
    with torch.no_grad():
        expected = net(images)
        net.features_input = True
        got = net(torch.stack([cached[i]["img"] for i in range(3)]))
    torch.testing.assert_close(got, expected, atol=2e-2, rtol=1e-2)  # maps are stored as float16


def test_caching_needs_a_frozen_encoder():
    net, _ = build_backbone("efficientnet_lite0", input_size=(64, 48), pretrained=True, pooling="flatten")
    with pytest.raises(ValueError, match="frozen backbone"):
        cache_features([{"img": torch.zeros(3, 64, 48)}], net, torch.device("cpu"), progress=False)


def test_cached_run_trains_and_evaluates_on_images(tiny_synthetic_root, tmp_path):
    cfg = load_config("configs/body_cpu.yaml", [f"data.root={tiny_synthetic_root}", *TINY_TRAIN_OVERRIDES,
                                                *FROZEN, "train.cache_features=true", "train.steps=3"])
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.model.backbone.features_input and trainer.loader.num_workers == 0
    summary = trainer.run()
    assert summary["steps"] == 3 and summary["eval"]["pa_mpjpe_mm"] > 0
    assert trainer.model.backbone.features_input  # restored after the image-based evaluation
    state = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    assert any(k.startswith("backbone.model.") for k in state["model"])
    assert json.loads((tmp_path / "run/summary.json").read_text())["steps"] == 3


def test_cache_samples_draws_a_seeded_subset_whose_items_serve_themselves():
    net, _ = build_backbone("efficientnet_lite0", input_size=(64, 48), pretrained=True, pooling="flatten",
                            freeze=True)
    dataset = [{"img": torch.full((3, 64, 48), float(i)), "index": torch.tensor(i)} for i in range(10)]
    first = cache_features(dataset, net, torch.device("cpu"), progress=False, samples=4, seed=3)
    again = cache_features(dataset, net, torch.device("cpu"), progress=False, samples=4, seed=3)
    other = cache_features(dataset, net, torch.device("cpu"), progress=False, samples=4, seed=4)
    chosen = first.fields["source_index"].tolist()
    assert len(first) == 4 and chosen == sorted(chosen) and len(set(chosen)) == 4
    assert chosen == again.fields["source_index"].tolist() != other.fields["source_index"].tolist()
    # the trainer counts substituted (unreadable) images as served index - requested index: zero here
    assert first.fields["index"].tolist() == [0, 1, 2, 3]
    assert len(cache_features(dataset, net, torch.device("cpu"), progress=False, samples=0)) == 10
    with pytest.raises(ValueError, match="cache_samples"):
        cache_features(dataset, net, torch.device("cpu"), progress=False, samples=-1)
