"""Config system: YAML bases, overrides, errors."""
import pytest

from hmr.config import ConfigError, apply_overrides, load_config, merge


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {lr: 1.0e-4, steps: 10}\nmodel: {backbone: resnet50}\n")
    (tmp_path / "exp.yaml").write_text("_base_: base.yaml\ntrain: {steps: 20}\n")
    cfg = load_config(tmp_path / "exp.yaml", ["train.lr=3e-4", "model.head=transformer", "data.train=[a, b]"])
    assert cfg.train.steps == 20
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.model.backbone == "resnet50" and cfg.model.head == "transformer"
    assert cfg.data.train == ["a", "b"]
    assert cfg.get_path("train.lr") == pytest.approx(3e-4)
    assert cfg.get_path("nope.x", 5) == 5


def test_merge_replaces_non_dicts():
    assert merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["no_equals_sign"])
    with pytest.raises(AttributeError, match="no key"):
        load_config(None, ["a=1"]).b


def test_shipped_training_configs_are_consistent():
    """Every training preset names known datasets, protocols, representations, loss weights and model keys."""
    from pathlib import Path

    import hmr.rotations
    from hmr.data.registry import dataset_spec
    from hmr.engine.forward import OrthoSwitches
    from hmr.losses import LossWeights
    from hmr.models.regressor import resolve_model_config
    from hmr.protocols import get_protocol

    paths = [p for p in sorted(Path(__file__).parents[1].glob("configs/**/*.yaml")) if "synthetic" not in p.parts]
    assert len(paths) >= 10
    for path in paths:
        cfg = load_config(path)
        if "train" not in cfg.get("data", {}):
            continue  # a base file that names no data yet
        LossWeights.from_config(cfg.loss)
        OrthoSwitches.from_config(cfg.representation)
        hmr.rotations.get(cfg.representation.name, **cfg.representation.options)
        resolve_model_config({k: v for k, v in cfg.model.items() if k != "init_global_orient"})
        for name in cfg.data.train:
            dataset_spec(name, cfg)
        get_protocol(cfg.eval.dataset, cfg.eval.split)
