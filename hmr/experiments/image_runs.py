"""Image-based experiments of issue 8, trained with the project's trainer on the synthetic sets
(configs/body_cpu.yaml / hand_cpu.yaml; create the data with
``python tools/make_synthetic.py --config configs/synthetic/quick.yaml``).

Each function takes a preset and an output folder and returns JSON-ready results: per run the overrides, the
training summary, the eval history (every ``eval_every`` steps) and the final metrics (the evaluator's, which
include the train/inference gap of :mod:`hmr.engine.gap`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hmr.config import load_config

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CONFIGS = {"body": "body_cpu.yaml", "hand": "hand_cpu.yaml"}
#: Experiments compare representations; the CPU presets' soft orthogonality penalty is a fix of its own (issue 9).
PLAIN_PROM = "loss.orthogonality=0.0"
#: ... and so is the presets' late switch of forward kinematics to the SVD rotations (docs/prom_gap.md fix 2).
NO_ANNEAL = "representation.anneal.kind=none"
#: The presets' frozen landmark read-out needs MediaPipe's native crops; these presets train other backbones.
END_TO_END = ["model.freeze_backbone=false", "model.pooling=flatten", "train.cache_features=false"]
PRESETS = {
    # cpu: the CPU presets (quick synthetic sets) for 700 steps. The results in docs/results.md predate the
    # pretrained presets (MobileNetV3-small from scratch, ~2.7-4 steps/s on 2 cores, 8 runs in ~35-45 min);
    # with the pretrained encoders of the presets now a run is ~3x slower per step
    "cpu": {"steps": 700, "eval_every": 175, "eval_samples": 150, "seeds": [0],
            "extra": [PLAIN_PROM, NO_ANNEAL, "train.num_workers=1", "train.checkpoint_every=1000", "eval.num_workers=0",
                      "train.tensorboard=false"]},
    # full: a GPU, more steps and a bigger backbone on the same (or the default 20k) synthetic sets
    "full": {"steps": 20000, "eval_every": 1000, "eval_samples": 1000, "seeds": [0, 1, 2],
             "extra": [PLAIN_PROM, NO_ANNEAL, *END_TO_END, "model.backbone=resnet50", "model.pretrained=false",
                       "model.pooling=avg", "model.input_size=[256, 192]",
                       "data.crop_size=[256, 192]", "train.batch_size=64", "train.num_workers=8", "train.tensorboard=false"]},
    # tiny: for tests (needs data.root pointing at tiny sets through HMR_EXPERIMENT_OVERRIDES)
    "tiny": {"steps": 4, "eval_every": 2, "eval_samples": 8, "seeds": [0],
             "extra": [*END_TO_END, "model.backbone=resnet_tiny", "model.pretrained=false", "model.input_size=[64, 48]",
                       "data.crop_size=[64, 48]",
                       "train.batch_size=4", "train.num_workers=0", "train.tensorboard=false",
                       "eval.batch_size=8", "eval.num_workers=0", "train.checkpoint_every=1000"]},
}
TABLE_3A = [  # (rotation loss, forward kinematics, inference) mappings: PRoM Table 3a's switches
    ("train", "train", "inference"),          # PRoM: raw everywhere in training, SVD at inference
    ("inference", "train", "inference"),      # SVD only in the rotation loss
    ("train", "inference", "inference"),      # SVD only in FK
    ("inference", "inference", "inference"),  # SVD in the loop everywhere (svd9d)
    ("train", "train", "train"),              # never orthogonalized (raw matrices exported)
]


def _check_data(cfg) -> None:
    root = Path(cfg["data"]["root"])
    if not root.exists():
        raise FileNotFoundError(f"synthetic data not found under {root}: create it with "
                                "`python tools/make_synthetic.py --config configs/synthetic/quick.yaml`")


def _read_run(out_dir: Path) -> Optional[Dict[str, Any]]:
    """Summary + eval history of a finished run directory (None when the run did not finish)."""
    summary_file = out_dir / "summary.json"
    if not summary_file.is_file():
        return None
    summary = json.loads(summary_file.read_text())
    by_step: Dict[int, Dict[str, float]] = {}  # the final evaluation repeats the last periodic one
    eval_file = out_dir / "eval_history.csv"
    if eval_file.exists():
        for line in eval_file.read_text().splitlines():
            step, *pairs = line.split(",")
            by_step[int(step)] = {"step": int(step), **{k: float(v) for k, v in (x.split("=") for x in pairs)}}
    return {"history": [by_step[k] for k in sorted(by_step)], "final": summary.get("eval") or {}, "skipped_steps": summary["skipped_steps"],
            "seconds": summary["seconds"], "train_last": summary.get("final", {})}


def train_and_eval(kind: str, overrides: Sequence[str], out_dir: Path, preset: str) -> Dict[str, Any]:
    """Train one configuration with the trainer (evaluating every ``eval_every`` steps) and return the summary
    and eval history. ``HMR_EXPERIMENT_OVERRIDES`` (space-separated ``key=value``) is applied last."""
    from hmr.engine.run_folder import prepare_run_folder
    from hmr.engine.trainer import Trainer
    cfg = run_config(kind, overrides, preset)
    _check_data(cfg)
    prepare_run_folder(out_dir, resume=False, overwrite=True)  # an unfinished earlier attempt starts afresh
    Trainer(cfg, out_dir).run()
    return {"kind": kind, "overrides": list(overrides), **_read_run(out_dir)}


def run_config(kind: str, overrides: Sequence[str], preset: str):
    """The CPU preset of ``kind`` with the experiment preset's settings, ``overrides`` and
    ``HMR_EXPERIMENT_OVERRIDES`` (space-separated ``key=value``, applied last)."""
    import os

    p = PRESETS[preset]
    all_overrides = ([f"train.steps={p['steps']}", f"train.eval_every={p['eval_every']}",
                      f"eval.max_samples_during_training={p['eval_samples']}", "train.final_eval=false"]
                     + p["extra"] + list(overrides) + os.environ.get("HMR_EXPERIMENT_OVERRIDES", "").split())
    return load_config(str(CONFIG_DIR / CONFIGS[kind]), all_overrides)


def mean_pose_baselines(preset: str, out_dir: Path, kinds: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """{kind: metrics} of the training set's mean pose on the test samples the runs are evaluated on (the
    first ``eval_samples`` of the split): the reference an error-vs-steps curve has to get below."""
    from hmr.engine.eval_job import run_eval
    baselines = {}
    for kind in sorted(set(kinds)):
        cfg = run_config(kind, [], preset)
        _check_data(cfg)
        report = run_eval(cfg, None, None, None, out_dir / f"baseline_mean_pose_{kind}.json",
                          max_samples=PRESETS[preset]["eval_samples"], source="mean-pose")
        baselines[kind] = report["metrics"]
    return baselines


def _experiment(preset: str, out_dir: Path, runs: List[Dict[str, Any]], collect_only: bool,
                **extra: Any) -> Dict[str, Any]:
    """Run (or collect) the grid; add the mean-pose baselines of the sets it used (skipped when collecting)."""
    result = {"settings": _settings(preset), **extra, "runs": _grid(preset, out_dir, runs, collect_only)}
    if not collect_only:
        result["baselines"] = mean_pose_baselines(preset, out_dir, [r["kind"] for r in runs])
    return result


def _grid(preset: str, out_dir: Path, runs: List[Dict[str, Any]], collect_only: bool = False
          ) -> List[Dict[str, Any]]:
    """Run every {label, kind, overrides} (per seed), keep going when one diverges. A run whose directory holds a
    finished run (summary.json) is reused; ``collect_only`` trains nothing and records the missing runs as such."""
    from hmr.engine.trainer import TrainingDiverged
    results = []
    for seed in PRESETS[preset]["seeds"]:
        for run in runs:
            run_dir = out_dir / f"{run['label'].replace('/', '_')}_{run['kind']}_seed{seed}"
            done = _read_run(run_dir)
            if done is not None or collect_only:
                log.info("%s %s seed %d: %s", run["label"], run["kind"], seed,
                         "reused" if done else "not run (collect-only)")
                results.append({"label": run["label"], "seed": seed, "kind": run["kind"],
                                "overrides": run["overrides"], "diverged": False,
                                **(done or {"not_run": True, "history": [], "final": {}})})
                continue
            try:
                result = train_and_eval(run["kind"], run["overrides"] + [f"train.seed={seed}"], run_dir, preset)
                result["diverged"] = False
            except TrainingDiverged as exc:
                result = {"kind": run["kind"], "overrides": run["overrides"], "diverged": True, "error": str(exc)}
            results.append({"label": run["label"], "seed": seed, **result})
    return results


def _settings(preset: str) -> Dict[str, Any]:
    models = {}
    for kind in CONFIGS:
        model = run_config(kind, [], preset)["model"]
        models[kind] = {k: model.get(k) for k in ("backbone", "pooling", "input_size", "head")}
    return {"configs": {k: f"configs/{v}" for k, v in CONFIGS.items()}, **PRESETS[preset], "model": models}


def convergence(preset: str, out_dir: Path, collect_only: bool = False) -> Dict[str, Any]:
    """PRoM Fig. 2c/d: eval error every K steps, fixed lr, body and hand sets."""
    reps = ["prom", "6d", "6d_free", "svd9d"]
    runs = [{"label": r, "kind": k, "overrides": [f"representation.name={r}"]} for k in ("body", "hand") for r in reps]
    return _experiment(preset, out_dir, runs, collect_only)


def learning_rates(preset: str, out_dir: Path, collect_only: bool = False) -> Dict[str, Any]:
    """PRoM Table 3b: final error and divergence per learning rate."""
    runs = [{"label": f"{r}/lr={lr:g}", "kind": "body", "overrides": [f"representation.name={r}", f"train.lr={lr}"]}
            for r in ("prom", "6d", "svd9d") for lr in (1e-4, 2e-4, 5e-4, 8e-4)]
    return _experiment(preset, out_dir, runs, collect_only)


def orthogonalization(preset: str, out_dir: Path, collect_only: bool = False) -> Dict[str, Any]:
    """PRoM Table 3a: where to orthogonalize (rotation loss / FK / inference), prom's raw 9 numbers."""
    runs = [{"label": f"loss={a},fk={b},inf={c}", "kind": "body",
             "overrides": ["representation.name=prom", f"representation.rotation_loss={a}",
                           f"representation.forward_kinematics={b}", f"representation.inference={c}"]}
            for a, b, c in TABLE_3A]
    return _experiment(preset, out_dir, runs, collect_only, rows=TABLE_3A)


def downstream_only(preset: str, out_dir: Path, collect_only: bool = False) -> Dict[str, Any]:
    """PRoM Table 2b analogue: 2D keypoints only — no rotation, 3D joint, vertex or shape labels."""
    only_2d = ["loss.rotation=0", "loss.joints3d=0", "loss.vertices=0", "loss.betas_gt=0", "loss.representation=0"]
    runs = [{"label": r, "kind": "body", "overrides": [f"representation.name={r}"] + only_2d}
            for r in ("prom", "6d", "svd9d")]
    return _experiment(preset, out_dir, runs, collect_only)


#: Issue 9 on images: PRoM's fixes next to plain PRoM, 6d and svd9d (the lifting-bed variants of prom_gap.py).
GAP_VARIANTS: Dict[str, List[str]] = {
    "prom": ["representation.name=prom"],
    "prom+ortho": ["representation.name=prom", "loss.orthogonality=0.1"],
    "prom+anneal": ["representation.name=prom", "representation.anneal.kind=linear", "representation.anneal.start=0.6",
                    "representation.anneal.end=0.9",
                    "representation.anneal.targets=[forward_kinematics, rotation_loss]"],
    "prom+scale_free": ["representation.name=prom_scale_free", "representation.options={mode: frobenius}"],
    "6d": ["representation.name=6d"],
    "svd9d": ["representation.name=svd9d"],
}


def prom_gap_images(preset: str, out_dir: Path, collect_only: bool = False) -> Dict[str, Any]:
    """Issue 9's image half: final accuracy and the train/inference gap of PRoM, PRoM + each training-time fix,
    6d and svd9d on the synthetic body set (the evaluator's ``inference_gap_*`` columns)."""
    runs = [{"label": name, "kind": "body", "overrides": list(overrides)} for name, overrides in GAP_VARIANTS.items()]
    return _experiment(preset, out_dir, runs, collect_only, variants=GAP_VARIANTS)


def raw_fk(preset: str, out_dir: Path, collect_only: bool = False) -> Dict[str, Any]:
    """Zhou 2019's warning: raw matrices into FK without a rotation loss — bone-length error of the
    training-time skeleton and of the SVD skeleton (evaluator's train_/inference_bone_error_mm)."""
    runs = [{"label": f"{r}/{'rotloss' if w else 'no-rotloss'}", "kind": "body",
             "overrides": [f"representation.name={r}", f"loss.rotation={w}"]}
            for r in ("prom", "6d") for w in (0.0, 1.0)]
    return _experiment(preset, out_dir, runs, collect_only)
