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


def test_shipped_configs_parse():
    from pathlib import Path
    for path in sorted(Path(__file__).parents[1].glob("configs/**/*.yaml")):
        cfg = load_config(path)
        assert "train" in cfg and "model" in cfg, path
