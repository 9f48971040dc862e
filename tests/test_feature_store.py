"""Feature caches on disk: written once, reused for the same settings only, refused (and rebuilt) otherwise; a
cached run evaluates on cached test features exactly as the image path does."""
import json

import pytest
import torch

from conftest import TINY_TRAIN_OVERRIDES
from hmr.config import load_config
from hmr.engine import feature_store
from hmr.engine.feature_cache import CachedFeatureDataset
from hmr.engine.trainer import Trainer

FROZEN = ["model.backbone=efficientnet_lite0", "model.pretrained=true", "model.freeze_backbone=true",
          "model.pooling=flatten", "model.landmarks.train_from=null", "loss.landmarks=0.0"]


def _dataset(value=1.0):
    return CachedFeatureDataset({"img": torch.full((2, 3), value), "index": torch.arange(2)}, 2)


def test_a_cache_is_built_once_and_reused(tmp_path):
    key = {"role": "train", "samples": 2}
    calls = []

    def build():
        calls.append(1)
        return _dataset()

    first = feature_store.load_or_build(tmp_path, key, build)
    again = feature_store.load_or_build(tmp_path, key, build)
    assert len(calls) == 1 and torch.equal(first.fields["img"], again.fields["img"])
    other = feature_store.load_or_build(tmp_path, {"role": "train", "samples": 3}, lambda: _dataset(2.0))
    assert other.fields["img"][0, 0] == 2.0 and len(list(tmp_path.glob("train_*.pt"))) == 2


def test_a_file_with_another_key_or_truncated_is_refused_and_rebuilt(tmp_path):
    key = {"role": "train", "samples": 2}
    path = feature_store.cache_path(tmp_path, key)
    feature_store.save_cache(path, {"role": "other"}, _dataset())
    with pytest.raises(ValueError, match="other settings"):
        feature_store.load_cache(path, key)
    rebuilt = feature_store.load_or_build(tmp_path, key, lambda: _dataset(3.0))
    assert rebuilt.fields["img"][0, 0] == 3.0
    path.write_bytes(path.read_bytes()[:50])
    assert feature_store.load_or_build(tmp_path, key, lambda: _dataset(4.0)).fields["img"][0, 0] == 4.0


def test_the_key_follows_data_encoder_and_subset_but_not_the_head():
    cfg = load_config("configs/body_cpu.yaml")
    key = feature_store.cache_key(cfg, "train", 100, 0)
    head = load_config("configs/body_cpu.yaml", ["model.hidden=64", "representation.name=6d", "train.lr=1.0"])
    assert feature_store.cache_key(head, "train", 100, 0) == key
    for overrides in (["model.input_size=[128, 128]"], ["data.crop_size=[128, 128]"],
                      ["model.landmarks.train_from=t300"], ["model.landmarks.train_from=null"]):
        assert feature_store.cache_key(load_config("configs/body_cpu.yaml", overrides), "train", 100, 0) != key
    assert feature_store.cache_key(cfg, "train", 100, 1) != key
    json.dumps(key)  # plain JSON


def test_cached_runs_share_the_disk_cache_and_evaluate_like_the_image_path(tiny_synthetic_root, tmp_path):
    overrides = [f"data.root={tiny_synthetic_root}", *TINY_TRAIN_OVERRIDES, *FROZEN, "train.cache_features=true",
                 "train.steps=2", "train.eval_every=2", f"train.feature_cache_dir={tmp_path / 'cache'}",
                 "train.cache_seed=0", "eval.max_samples_during_training=6"]
    first = Trainer(load_config("configs/body_cpu.yaml", overrides), tmp_path / "a")
    first.run()
    files = sorted(p.name.split("_")[0] for p in (tmp_path / "cache").glob("*.pt"))
    assert files == ["eval", "train"]
    cached_eval = first._evaluate()["metrics"]
    from hmr.engine.evaluator import evaluate_config
    on_images = evaluate_config(first.cfg, first.model, first.body_model, first.representation, max_samples=6)
    assert first.model.backbone.features_input  # restored after evaluating on images
    for key in ("pa_mpjpe_mm", "mpjpe_mm"):
        assert cached_eval[key] == pytest.approx(on_images["metrics"][key], rel=1e-4)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.pt")}
    second = Trainer(load_config("configs/body_cpu.yaml", overrides + ["train.seed=5"]), tmp_path / "b")
    assert len(second.dataset) == len(first.dataset)
    torch.testing.assert_close(second.dataset.fields["img"], first.dataset.fields["img"])
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.pt")} == stamps
    history = (tmp_path / "a" / "eval_history.csv").read_text().splitlines()
    assert history[0].startswith("2,") and "train_seconds=" in history[0]
