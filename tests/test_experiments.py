"""tools/experiment.py end to end on the tiny preset (seconds), the report, the rotation-task runners and
the error paths."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hmr.experiments import registry, rotation_tasks
from hmr.experiments.prom_gap import VARIANTS
from hmr.experiments.report import early_error, goal_statement, prom_gap_rows

REPO = Path(__file__).resolve().parents[1]


def run_tool(*args, check=True, cwd=REPO):
    proc = subprocess.run([sys.executable, str(REPO / "tools/experiment.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_prom_gap_tiny_then_report(tmp_path):
    out, docs = tmp_path / "out", tmp_path / "docs"
    run_tool("prom-gap", "--preset", "tiny", "--out", out, "--threads", "1")
    result = json.loads((out / "prom-gap" / "tiny.json").read_text())
    assert result["machine"]["cpu_count"] and result["wall_seconds"] > 0
    variants = {r["variant"] for r in result["runs"]}
    assert variants == set(VARIANTS) and {"prom+anneal", "prom+scale_free", "6d", "svd9d"} <= variants
    assert {r["model"] for r in result["runs"]} == {"body", "hand"}             # the same bed on MANO
    assert result["conditions"] == ["joints-only/plain", "hand/joints-only/plain"]
    for run in result["runs"]:
        m = run["final"]["metrics"]
        assert all(v == v for v in m.values()), run["variant"]          # no NaN
        if run["variant"] in ("6d", "svd9d"):                           # training matrix is a rotation
            assert m["inference_gap_pve_mm"] < 1e-2 and m["train_det_neg_frac"] == 0.0
        if run["variant"] == "prom":
            assert m["inference_gap_pve_mm"] > 0 and "refit_pve_mm" in m
        assert run["history"][0]["step"] == 0 and run["history"][-1]["step"] == result["settings"]["steps"]
    run_tool("report", "--results", out, "--docs", docs)
    text = (docs / "results.md").read_text()
    assert "## prom-gap" in text and "| prom+refit |" in text and "Goal check" in text
    assert "### hand/joints-only/plain" in text
    assert (docs / "figures" / "prom_gap_curves.png").stat().st_size > 1000
    assert (docs / "results" / "prom-gap" / "tiny.json").is_file()              # copied for reproducibility
    assert "## Not run yet" in text and "`convergence`" in text


def _cli():
    """tools/experiment.py loaded in-process (its main() takes argv), to test error paths without a subprocess."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("experiment_cli", REPO / "tools" / "experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_errors(tmp_path, capsys, monkeypatch):
    cli = _cli()
    assert cli.main(["no-such-experiment", "--out", str(tmp_path)]) == 2
    assert "unknown experiment" in capsys.readouterr().err
    # image experiments need the synthetic sets: a clear message, not a traceback
    monkeypatch.chdir(tmp_path)
    assert cli.main(["convergence", "--preset", "cpu", "--out", str(tmp_path)]) == 2
    assert "make_synthetic.py" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown experiment"):
        registry.run_experiment("no-such-experiment", "cpu", tmp_path)
    with pytest.raises(ValueError, match="preset"):
        registry.run_experiment("prom-gap", "huge", tmp_path)


def test_rotation_recovery_and_point_cloud_tiny(tmp_path):
    rec = rotation_tasks.rotation_recovery("tiny", tmp_path)
    assert [r["representation"] for r in rec["rows"]] == ["prom", "6d"]
    assert all(0 <= r["mean_deg"] <= 180 for r in rec["rows"])
    pc = rotation_tasks.point_cloud("tiny", tmp_path)
    assert {(r["object"], r["representation"]) for r in pc["rows"]} == {
        (o, n) for o in ("open-smpl", "open-mano-right") for n in ("prom", "6d")}
    assert all(0 <= r["mean_deg"] <= 180 for r in pc["rows"])


@pytest.mark.slow
def test_gradients_tiny(tmp_path):
    result = rotation_tasks.gradients("tiny", tmp_path)
    assert len(result["condition_over_training"]) == 4
    assert all(Path(f).is_file() for f in result["figures"])


def test_goal_statement_on_constructed_rows():
    def run(variant, mpjpe, gap, early):
        hist = [{"step": 0, "mpjpe": 500.0}, {"step": 10, "mpjpe": early}, {"step": 80, "mpjpe": mpjpe}]
        return {"variant": variant, "condition": "c", "seed": 0, "history": hist,
                "final": {"metrics": {"mpjpe_mm": mpjpe, "inference_gap_pve_mm": gap}}}
    result = {"variants": {"prom": {}, "prom+x": {}, "6d": {}, "svd9d": {}},
              "runs": [run("prom", 60, 40, 100), run("prom+x", 49, 3, 101), run("6d", 50, 0, 150),
                       run("svd9d", 52, 0, 160)]}
    rows = prom_gap_rows(result, "c")
    assert early_error(result["runs"][0]["history"]) == 100
    statement = goal_statement(rows)
    assert "prom+x: MEETS" in statement and "prom: misses" in statement


def _finished_run(root, kind, overrides, seed, final, history):
    from hmr.experiments import image_runs
    folder = root / "runs_cpu" / image_runs.run_folder_name(kind, overrides, "cpu", seed)
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"skipped_steps": 0, "seconds": 1.0, "eval": final}))
    (folder / "eval_history.csv").write_text("".join(
        f"{step},pa_mpjpe_mm={value:.3f},train_seconds={step / 10:.2f}\n" for step, value in history))
    return folder


def test_image_runs_reuse_finished_runs_and_collect_only(tmp_path):
    from hmr.experiments import image_runs
    from hmr.experiments.report_images import image_section
    work = tmp_path / "raw-fk" / "cpu_work"
    for seed, final in enumerate((80.0, 82.0)):
        _finished_run(tmp_path, "body", ["representation.name=prom", "loss.rotation=0.0"], seed,
                      {"pa_mpjpe_mm": final, "train_bone_error_mm": 9.0}, [(100, 150.0), (200, final)])
    result = image_runs.raw_fk("cpu", work, collect_only=True)
    runs = {(r["label"], r["seed"]): r for r in result["runs"]}
    assert runs["prom/no-rotloss", 0]["final"]["pa_mpjpe_mm"] == 80.0
    assert [h["step"] for h in runs["prom/no-rotloss", 1]["history"]] == [100, 200]
    assert runs["prom/no-rotloss", 1]["history"][-1]["train_seconds"] == 20.0
    assert runs["6d/rotloss", 0].get("not_run") is True and runs["prom/no-rotloss", 2].get("not_run") is True
    result["baselines"] = {"body": {"pa_mpjpe_mm": 160.0}}
    text = image_section("raw-fk", result, tmp_path / "figures")
    # seeds 0 and 1 of prom/no-rotloss: 81.0 ± 1.4 mm, 0.506 of the mean pose; 75 % (120 mm) reached at step 200
    assert "| body | prom/no-rotloss | 81.0 ± 1.4 | 0.506 ± 0.009 |" in text and "| 0 / 1 |" in text
    assert "| 200 / 200 / 200 |" in text and "| 0 / 3 |" in text  # 6d/rotloss: no seed ran
    with pytest.raises(ValueError, match="collect-only"):
        registry.run_experiment("prom-gap", "tiny", tmp_path, collect_only=True)


def test_a_run_locked_by_a_live_process_is_left_to_it(tmp_path):
    import os

    from hmr.experiments import image_runs
    run_dir = tmp_path / "runs_cpu" / "body_x_seed0"
    lock = image_runs._lock(run_dir)
    lock.parent.mkdir(parents=True)
    lock.write_text(str(os.getppid()))   # the parent process is alive
    assert not image_runs._claim(run_dir)
    lock.write_text("999999999")          # no such process: a stale lock is taken over
    assert image_runs._claim(run_dir) and lock.read_text() == str(os.getpid())


def test_results_before_the_pretrained_presets_are_labelled(tmp_path):
    from hmr.experiments.report_images import image_section
    legacy = {"settings": {"steps": 700, "seeds": [0]}, "baselines": {"body": {"pa_mpjpe_mm": 171.25}},
              "runs": [{"label": "prom", "kind": "body", "seed": 0, "final": {"pa_mpjpe_mm": 160.0},
                        "history": [{"step": 100, "pa_mpjpe_mm": 165.0}], "skipped_steps": 0}]}
    text = image_section("convergence", legacy, tmp_path / "figures")
    assert "Predates the pretrained presets" in text and "| prom | body | 0 | 160.0 |" in text
    assert "| mean pose (baseline) | body | – | 171.2 |" in text


def test_image_experiments_report_the_mean_pose_baseline(tmp_path, monkeypatch, tiny_synthetic_root):
    from hmr.experiments import image_runs
    monkeypatch.setenv("HMR_EXPERIMENT_OVERRIDES", f"data.root={tiny_synthetic_root}")
    baselines = image_runs.mean_pose_baselines("tiny", tmp_path, ["body", "body"])
    assert set(baselines) == {"body"} and baselines["body"]["pa_mpjpe_mm"] > 0
    written = json.loads((tmp_path / "baseline_mean_pose_body.json").read_text())
    assert written["source"] == "mean-pose" and written["count"] == image_runs.PRESETS["tiny"]["eval_samples"]
    assert image_runs.stored_baselines(tmp_path, ["body", "hand"]) == {"body": baselines["body"]}


def test_prom_gap_images_variants_build_the_intended_runs():
    """Each image variant resolves to the representation, penalty and annealing it is named after."""
    from hmr.engine.builders import build_representation
    from hmr.engine.forward import Annealing
    from hmr.experiments import image_runs
    seen = {}
    for name, overrides in image_runs.GAP_VARIANTS.items():
        cfg = image_runs.run_config("body", overrides, "cpu")
        anneal = Annealing.from_config(cfg.representation.get("anneal"))
        seen[name] = (build_representation(cfg).name, float(cfg.loss.orthogonality),
                      anneal.weight(cfg.train.steps, cfg.train.steps))
    assert seen["prom"] == ("prom", 0.0, 0.0)
    assert seen["prom+ortho"] == ("prom", 0.1, 0.0)
    assert seen["prom+anneal"][:2] == ("prom", 0.0) and seen["prom+anneal"][2] == 1.0
    assert seen["prom+scale_free"][0] == "prom_scale_free"
    assert seen["6d"][0] == "6d" and seen["svd9d"][0] == "svd9d"
    assert image_runs._settings("cpu")["model"]["body"]["pooling"] == "landmarks"  # the CPU presets' read-out


@pytest.mark.slow
def test_prom_gap_images_tiny_runs_and_reports_the_gap(tmp_path, monkeypatch, tiny_synthetic_root):
    from hmr.experiments import image_runs
    from hmr.experiments.report_images import image_section
    monkeypatch.setenv("HMR_EXPERIMENT_OVERRIDES", f"data.root={tiny_synthetic_root} train.final_eval=true")
    result = image_runs.prom_gap_images("tiny", tmp_path)
    for kind in ("body", "hand"):
        labels = [r["label"] for r in result["runs"] if r["kind"] == kind]
        assert labels == list(image_runs.GAP_VARIANTS) + ["prom+refit"]
    refits = [r for r in result["runs"] if r["label"] == "prom+refit"]
    assert all(np.isfinite(r["final"]["pa_mpjpe_mm"]) and "inference_gap_mpjpe_mm" in r["final"] for r in refits)
    text = image_section("prom-gap-images", result, tmp_path / "figures")
    assert "issue 9" in text and "inference_gap_pve_mm" in text and "| prom+refit | body | 0 |" in text


def test_presets_other_than_cpu_train_end_to_end_without_the_fk_switch():
    """The full / tiny experiment presets train other backbones end to end; only prom+anneal anneals."""
    from hmr.experiments import image_runs

    for preset in ("full", "tiny"):
        cfg = image_runs.run_config("body", [], preset)
        assert cfg.model.pooling != "landmarks" and not cfg.model.freeze_backbone and not cfg.train.cache_features
    assert image_runs.run_config("hand", [], "cpu").representation.anneal.kind == "none"


def test_kinds_restrict_an_image_experiment_to_some_sets(tmp_path):
    from hmr.experiments import image_runs
    work = tmp_path / "convergence" / "cpu_work"
    result = image_runs.convergence("cpu", work, collect_only=True, kinds=("hand",))
    assert {r["kind"] for r in result["runs"]} == {"hand"}
    assert {r["label"] for r in result["runs"]} == {"prom", "svd9d", "6d", "6d_free", "quaternion", "axis_angle"}
    with pytest.raises(ValueError, match="unknown set"):
        image_runs.convergence("cpu", work, collect_only=True, kinds=("feet",))
    with pytest.raises(ValueError, match="--kinds applies"):
        registry.run_experiment("prom-gap", "tiny", tmp_path, kinds=("body",))


def test_the_cpu_preset_gives_the_hand_its_own_batch_and_cache():
    from hmr.experiments import image_runs
    hand, body = image_runs.run_config("hand", [], "cpu"), image_runs.run_config("body", [], "cpu")
    assert hand.train.batch_size == 128 and hand.train.cache_samples == 0
    assert body.train.batch_size == 32 and body.train.cache_samples == 6000
    assert image_runs.run_folder_name("body", ["representation.name=prom"], "cpu", 0) == \
        image_runs.run_folder_name("body", ["train.lr=0.001"], "cpu", 0)  # both are the preset's defaults


def test_prom_gap_images_pairs_the_stored_refit_with_plain_prom(tmp_path):
    """prom+refit is an evaluation of plain PRoM's checkpoint: read from refit_eval.json under the plain names,
    paired with prom by seed, with no training curve (and not computed when collecting)."""
    from hmr.experiments import image_runs
    from hmr.experiments.refit_runs import STORED
    from hmr.experiments.report_images import image_section, paired_rows
    work = tmp_path / "prom-gap-images" / "cpu_work"
    for seed, (plain, refit) in enumerate(((110.0, 112.0), (111.0, 114.0), (109.0, 110.5))):
        folder = _finished_run(tmp_path, "body", image_runs.GAP_VARIANTS["prom"], seed,
                               {"pa_mpjpe_mm": plain, "mpjpe_mm": 190.0, "inference_gap_mpjpe_mm": 74.0},
                               [(100, 150.0), (200, plain)])
        if seed < 2:  # seed 2's refit was never computed: collect-only must not compute it
            (folder / STORED).write_text(json.dumps({"metrics": {
                "pa_mpjpe_mm": plain, "refit_pa_mpjpe_mm": refit, "refit_mpjpe_mm": 180.0,
                "refit_gap_mpjpe_mm": 20.0, "refit_betas_drift": 3.0}}))
    result = image_runs.prom_gap_images("cpu", work, collect_only=True, kinds=("body",))
    refits = [r for r in result["runs"] if r["label"] == "prom+refit"]
    assert [r["seed"] for r in refits] == [0, 1, 2] and refits[2].get("not_run") is True
    assert refits[0]["final"] == {"pa_mpjpe_mm": 112.0, "mpjpe_mm": 180.0, "inference_gap_mpjpe_mm": 20.0,
                                  "betas_drift": 3.0}
    assert not (tmp_path / "runs_cpu" / image_runs.run_folder_name(
        "body", image_runs.GAP_VARIANTS["prom"], "cpu", 2) / STORED).exists()
    result["baselines"] = {"body": {"pa_mpjpe_mm": 160.0}}
    pair = next(p for p in paired_rows("prom-gap-images", result) if p["a"] == "prom+refit")
    assert pair["final"]["diffs"] == [2.0, 3.0] and pair["final"]["verdict"] == "inconclusive"  # two seeds
    assert pair["mpjpe"]["diffs"] == [-10.0, -10.0] and pair["steps_to_75"]["diffs"] == []
    text = image_section("prom-gap-images", result, tmp_path / "figures")
    assert "| body | prom+refit | 113.0 ± 1.4 |" in text and "– (no training curve)" in text
