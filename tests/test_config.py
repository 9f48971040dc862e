"""Config system: YAML bases, overrides, errors."""
import pytest

from hmr.config import ConfigError, apply_overrides, load_config, merge


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {lr: 1.0e-4, steps: 10}\nmodel: {backbone: resnet50, head: cliff}\n"
                                        "data: {train: [x]}\n")
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


# ---------------------------------------------------------------------------- issue 16 item 5: strict overrides
DEFAULTS = "configs/defaults.yaml"


def _repo_config(name):
    from pathlib import Path
    return Path(__file__).parents[1] / "configs" / name


def test_unknown_override_key_is_refused_with_its_name():
    with pytest.raises(ConfigError, match=r"train\.stepz.*unknown.*train\.steps"):
        load_config(_repo_config("body_cpu.yaml"), ["train.stepz=10"])
    with pytest.raises(ConfigError, match=r"nosection"):
        load_config(_repo_config("body_cpu.yaml"), ["nosection.x=1"])


@pytest.mark.parametrize("override, words", [
    ("train.steps=abc", r"train\.steps.*integer.*'abc'"),
    ("train.steps=10.7", r"train\.steps.*integer.*10\.7"),
    ("train.lr=fast", r"train\.lr.*number"),
    ("train.amp=1", r"train\.amp.*true or false"),
    ("train=5", r"'train'.*section.*train\.steps"),          # a section replaced by a scalar
    ("train.steps.x=1", r"train\.steps.*not a section"),     # a scalar replaced by a section
    ("train.schedule=cosine", r"train\.schedule.*section"),
    ("model.input_size=96", r"model\.input_size.*list"),
])
def test_override_type_changes_are_refused_naming_the_key(override, words):
    with pytest.raises(ConfigError, match=words):
        load_config(_repo_config("body_cpu.yaml"), [override])


def test_compatible_overrides_are_applied_and_coerced():
    cfg = load_config(_repo_config("body_cpu.yaml"), [
        "train.lr=1", "train.steps=12", "data.root=2024", "model.backbone_checkpoint=/x/b.pt",
        "data.sets.mine={type: spin_npz, npz: a.npz, images: b}", "data.sets.synth_body.npz=c.npz",
        "data.train={mine: 0.5, synth_body: 0.5}", "representation.options.inference=gram_schmidt",
        "train.schedule={kind: step, milestones: [5]}", "model.pretrained=/x/w.pt"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.steps == 12 and cfg.data.root == "2024"
    assert cfg.model.backbone_checkpoint == "/x/b.pt"
    assert cfg.data.sets.mine.type == "spin_npz" and cfg.data.sets.synth_body.npz == "c.npz"
    assert cfg.data.sets.synth_body.images == "body_quick"
    assert dict(cfg.data.train) == {"mine": 0.5, "synth_body": 0.5}
    assert cfg.representation.options.inference == "gram_schmidt"
    assert cfg.train.schedule.kind == "step" and cfg.train.schedule.warmup_steps == 100  # the preset's, kept
    with pytest.raises(ConfigError, match=r"train\.schedule\.kindd"):
        load_config(_repo_config("body_cpu.yaml"), ["train.schedule={kindd: step}"])


def test_a_config_file_may_not_add_keys_its_base_lacks(tmp_path):
    (tmp_path / "exp.yaml").write_text(f"_base_: {_repo_config('defaults.yaml')}\ntrain: {{stepz: 10}}\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml.*train\.stepz"):
        load_config(tmp_path / "exp.yaml")


def test_every_shipped_config_loads_strictly():
    from pathlib import Path
    paths = sorted(Path(__file__).parents[1].glob("configs/**/*.yaml"))
    assert len(paths) >= 12
    for path in paths:
        load_config(path)
