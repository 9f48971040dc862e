"""Evaluation only scores samples that have the ground truth a metric needs (issue 16 item 1), and
tools/eval.py applies or refuses every override (item 3) and prints the unreadable-image count (item 13)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hmr.protocols import get_protocol
from test_train_e2e import overrides, run_tool


def _labelled(n, **flags):
    out = {name: np.ones(n, dtype=bool) for name in ("pose", "betas", "3d", "vertices")}
    out.update({k: np.asarray(v, dtype=bool) for k, v in flags.items()})
    return out


# ------------------------------------------------------------------------------------ protocol level
def test_vertex_metrics_are_refused_without_vertices_and_joints_still_scored():
    rng = np.random.default_rng(0)
    protocol = get_protocol("freihand_eval")
    pj, gj = rng.normal(size=(4, 21, 3)), rng.normal(size=(4, 21, 3))
    pv = rng.normal(size=(4, 778, 3))
    scored = protocol.score(pj, gj, pv, np.zeros_like(pv), _labelled(4, vertices=[0, 0, 0, 0]))
    assert set(scored.metrics) == {"pa_mpjpe_mm", "auc_joints"}
    assert scored.counts == {"pa_mpjpe_mm": 4, "auc_joints": 4}
    for key in ("pa_mpvpe_mm", "auc_vertices", "f@5mm", "f@15mm"):
        assert "has_vertices" in scored.refused[key] and "0 of 4" in scored.refused[key]
    assert np.isnan(scored.per_sample["pa_mpvpe"]).all() and np.isfinite(scored.per_sample["pa_mpjpe"]).all()


def test_metrics_use_only_the_labelled_samples():
    rng = np.random.default_rng(1)
    protocol = get_protocol("freihand_eval")
    gj, gv = rng.normal(size=(3, 21, 3)), rng.normal(size=(3, 778, 3))
    pj, pv = gj + 0.01 * rng.normal(size=gj.shape), gv.copy()
    pv[2] += rng.normal(size=(778, 3))                 # a bad prediction on the sample without GT vertices
    scored = protocol.score(pj, gj, pv, gv, _labelled(3, vertices=[1, 1, 0]))
    assert scored.counts["pa_mpvpe_mm"] == 2 and scored.counts["pa_mpjpe_mm"] == 3
    assert scored.metrics["pa_mpvpe_mm"] < 1e-6 and scored.metrics["f@5mm"] == pytest.approx(1.0)
    assert np.isnan(scored.per_sample["pa_mpvpe"][2])


def test_mesh_ground_truth_needs_pose_and_shape():
    rng = np.random.default_rng(2)
    protocol = get_protocol("synth_body_test")
    j, v = rng.normal(size=(3, 24, 3)), rng.normal(size=(3, 100, 3))
    scored = protocol.score(j, j, v, v, _labelled(3, pose=[1, 0, 1], betas=[1, 1, 0]))
    assert scored.counts == {"mpjpe_mm": 1, "pa_mpjpe_mm": 1, "pve_mm": 1}
    scored = protocol.score(j, j, v, v, _labelled(3, betas=[0, 0, 0]))
    assert not scored.metrics and "has_betas" in scored.refused["mpjpe_mm"]


def test_file_joints_need_has_3d():
    rng = np.random.default_rng(3)
    protocol = get_protocol("h36m_p1")
    scored = protocol.score(rng.normal(size=(2, 17, 3)), np.zeros((2, 24, 3)), None, None,
                            _labelled(2, **{"3d": [0, 0]}))
    assert not scored.metrics and "has_3d" in scored.refused["pa_mpjpe_mm"]


# ------------------------------------------------------------------------------------ end to end
def _copy(src_root, dst_root, name):
    shutil.copytree(Path(src_root) / name, Path(dst_root) / name)
    return Path(dst_root)


def _eval(*args, check=True):
    return run_tool("tools/eval.py", *args, check=check)


def test_freihand_layout_without_vertices(tiny_synthetic_root, tmp_path):
    root = _copy(tiny_synthetic_root, tmp_path / "data", "hand_quick")
    (root / "hand_quick" / "evaluation_verts.json").unlink()
    out = tmp_path / "r.json"
    proc = _eval("--config", "configs/hand_cpu.yaml", "--oracle", "--out", out, f"data.root={root}")
    report = json.loads(out.read_text())
    assert "pa_mpvpe_mm" not in report["metrics"] and "f@5mm" not in report["metrics"]
    assert report["metric_samples"]["pa_mpjpe_mm"] == 8 and report["metrics"]["pa_mpjpe_mm"] < 1e-3
    assert set(report["refused_metrics"]) >= {"pa_mpvpe_mm", "f@5mm", "f@15mm", "auc_vertices"}
    assert "refused" in proc.stdout and "has_vertices" in proc.stdout
    assert "n=8" in proc.stdout


@pytest.mark.parametrize("drop, label", [(("pose", "rotmat"), "has_pose"), (("shape",), "has_betas")])
def test_body_npz_without_pose_or_shape_is_refused_not_scored(tiny_synthetic_root, tmp_path, drop, label):
    root = _copy(tiny_synthetic_root, tmp_path / "data", "body_quick")
    path = root / "body_quick" / "test.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k not in drop}
    np.savez(path, **arrays)
    out = tmp_path / "r.json"
    for source in (["--oracle"], ["--baseline", "mean-pose"]):
        proc = _eval("--config", "configs/body_cpu.yaml", *source, "--out", out, f"data.root={root}", check=False)
        assert proc.returncode == 2 and label in proc.stderr and "no metric can be scored" in proc.stderr, \
            proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr


def test_h36m_npz_without_3d_joints_is_refused(tiny_synthetic_root, tmp_path):
    root = _copy(tiny_synthetic_root, tmp_path / "data", "body_quick")
    with np.load(root / "body_quick" / "test.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "S"}
    np.savez(root / "body_quick" / "h36m_like.npz", **arrays)
    proc = _eval("--config", "configs/body_cpu.yaml", "--oracle", "--dataset", "h36m_p1", "--out", tmp_path / "r.json",
                 f"data.root={root}", "data.sets.h36m_p1={npz: body_quick/h36m_like.npz, images: body_quick}",
                 check=False)
    assert proc.returncode == 2 and "has_3d" in proc.stderr, proc.stderr[-2000:]


def test_eval_stdout_counts_unreadable_images(tiny_synthetic_root, tmp_path):
    root = _copy(tiny_synthetic_root, tmp_path / "data", "body_quick")
    from hmr.config import load_config
    from hmr.data import build_dataset
    cfg = load_config("configs/body_cpu.yaml", [f"data.root={root}"])
    Path(build_dataset("synth_body", "test", cfg).annotation(3).image_path).write_bytes(b"broken")
    out = tmp_path / "r.json"
    proc = _eval("--config", "configs/body_cpu.yaml", "--oracle", "--out", out, f"data.root={root}")
    report = json.loads(out.read_text())
    assert report["unreadable"] == 1 and report["count"] == 7
    assert "unreadable images: 1" in proc.stdout, proc.stdout
    assert report["metric_samples"]["pa_mpjpe_mm"] == 7


# ------------------------------------------------------------------------------------ item 3: overrides
@pytest.fixture(scope="module")
def trained(tiny_synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("evalrun") / "run"
    run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", out,
             *overrides(tiny_synthetic_root, "train.steps=1", "train.final_eval=false"))
    return out / "checkpoints" / "last.pt"


def test_overrides_apply_without_config(trained, tiny_synthetic_root, tmp_path):
    proc = _eval("--checkpoint", trained, "--out", tmp_path / "r.json", "data.root=/nonexistent", check=False)
    assert proc.returncode == 2 and "/nonexistent" in proc.stderr, proc.stderr[-2000:]
    out = tmp_path / "ok.json"
    _eval("--checkpoint", trained, "--out", out, f"data.root={tiny_synthetic_root}",
          "representation.inference=train", "eval.batch_size=3")
    report = json.loads(out.read_text())
    assert report["inference_mapping"] == "train"
    assert report["data"]["root"] == str(tiny_synthetic_root)
    assert report["data"]["paths"]["npz"].endswith("body_quick/test.npz")
    assert report["metrics"]["inference_gap_mpjpe_mm"] < 1e-6   # training matrices exported as they are


def test_overrides_apply_with_config(trained, tiny_synthetic_root, tmp_path):
    out = tmp_path / "r.json"
    _eval("--config", "configs/body_cpu.yaml", "--checkpoint", trained, "--out", out,
          f"data.root={tiny_synthetic_root}", "representation.inference=train")
    assert json.loads(out.read_text())["inference_mapping"] == "train"


@pytest.mark.parametrize("override, words", [("model.backbone=resnet50", "model.backbone"),
                                             ("representation.name=6d", "representation.name"),
                                             ("train.lr=0.1", "train.lr"),
                                             ("data.rooot=/x", "data.rooot")])
def test_overrides_that_cannot_apply_are_refused(trained, tiny_synthetic_root, tmp_path, override, words):
    proc = _eval("--checkpoint", trained, "--out", tmp_path / "r.json", f"data.root={tiny_synthetic_root}",
                 override, check=False)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_matching_architecture_override_is_accepted(trained, tiny_synthetic_root, tmp_path):
    stored = torch.load(trained, weights_only=True)["config"]
    _eval("--checkpoint", trained, "--out", tmp_path / "r.json", f"data.root={tiny_synthetic_root}",
          f"model.backbone={stored['model']['backbone']}")
