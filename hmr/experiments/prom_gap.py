"""``tools/experiment.py prom-gap``: PRoM's train/inference gap and its fixes on the keypoint-lifting test bed
(issue 9 "Show"): prom, prom + each fix, 6d and svd9d; with and without a rotation loss; plain vs mean-pose
residual head; several seeds; on the open body model and on the open right hand (hand conditions are labelled
``hand/...``). The consistency refit (fix 4) is inference-only, so it is reported from the
plain ``prom`` runs (``refit_*`` metrics) as the row ``prom+refit``."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import hmr.body
from hmr.experiments.lifting import LiftingConfig, PoseSource, train_lifting

log = logging.getLogger(__name__)

ANNEAL = {"kind": "linear", "start": 0.6, "end": 0.9, "targets": ["forward_kinematics", "rotation_loss"]}
VARIANTS: Dict[str, Dict[str, Any]] = {
    "prom": {},
    "prom+ortho": {"orthogonality": 0.1},
    "prom+ortho1": {"orthogonality": 1.0},
    "prom+ortho10": {"orthogonality": 10.0},
    "prom+anneal": {"anneal": ANNEAL},
    "prom+scale_free": {"representation": "prom_scale_free", "rep_options": {"mode": "frobenius"}},
    "6d": {"representation": "6d"},
    "svd9d": {"representation": "svd9d"},
}
CONDITIONS = [  # (label, rotation-loss weight, head)
    ("rotloss/residual", 1.0, "residual"), ("rotloss/plain", 1.0, "plain"),
    ("joints-only/residual", 0.0, "residual"), ("joints-only/plain", 0.0, "plain"),
]
PRESETS = {
    "tiny": {"steps": 6, "seeds": [0], "eval_every": 3, "train_pool": 64, "test_size": 16, "val_size": 16,
             "batch_size": 16, "hidden": 32, "conditions": CONDITIONS[3:], "models": ["body", "hand"]},
    "cpu": {"steps": 800, "seeds": [0, 1], "eval_every": 50, "train_pool": 20000, "test_size": 500,
            "val_size": 256, "batch_size": 128, "hidden": 256, "conditions": CONDITIONS, "models": ["body", "hand"]},
    "full": {"steps": 5000, "seeds": [0, 1, 2, 3, 4], "eval_every": 100, "train_pool": 100000,
             "test_size": 2000, "val_size": 512, "batch_size": 256, "hidden": 512, "conditions": CONDITIONS,
             "models": ["body", "hand"]},
}
BODY_MODELS = {"body": "open-smpl", "hand": "open-mano-right"}
#: preset keys that only say *what* is run, not *how*: runs of an earlier file stay reusable when they change
_SCOPE_KEYS = ("conditions", "models")


def condition_label(kind: str, label: str) -> str:
    """Body conditions keep their plain labels (earlier result files use them); hand ones get ``hand/``."""
    return label if kind == "body" else f"{kind}/{label}"


def _previous_runs(preset: str, work_dir: Optional[Path]) -> Dict[tuple, Dict[str, Any]]:
    """Runs of an earlier result file of this preset with identical settings, by (variant, condition, seed),
    kept only where the variant's options are unchanged — so adding a variant does not rerun the others."""
    import json
    path = None if work_dir is None else Path(work_dir).parent / f"{preset}.json"
    if path is None or not path.is_file():
        return {}
    old = json.loads(path.read_text())
    settings = {k: v for k, v in PRESETS[preset].items() if k not in _SCOPE_KEYS}
    if {k: v for k, v in old.get("settings", {}).items() if k not in _SCOPE_KEYS} != settings:
        return {}
    return {(r["variant"], r["condition"], r["seed"]): r for r in old["runs"]
            if old["variants"].get(r["variant"]) == VARIANTS.get(r["variant"])}


def run(preset: str, work_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Every (variant, condition, seed) of the preset; returns the JSON-ready results. Runs found in an earlier
    result file with the same settings and variant options are reused (logged)."""
    p = PRESETS[preset]
    previous = _previous_runs(preset, work_dir)
    runs: List[Dict[str, Any]] = []
    conditions: List[str] = []
    for kind in p["models"]:
        body_model = hmr.body.load(BODY_MODELS[kind])
        test = PoseSource(body_model, p["test_size"], 99)
        conditions += [condition_label(kind, c[0]) for c in p["conditions"]]
        for seed in p["seeds"]:
            train = PoseSource(body_model, p["train_pool"], 1000 + seed)
            for base_label, rot_weight, head in p["conditions"]:
                label = condition_label(kind, base_label)
                for variant, options in VARIANTS.items():
                    if (variant, label, seed) in previous:
                        log.info("reusing %s / %s / seed %d from the previous result file", variant, label, seed)
                        runs.append({"model": kind, **previous[(variant, label, seed)]})
                        continue
                    cfg = LiftingConfig(**{"steps": p["steps"], "eval_every": p["eval_every"], "seed": seed,
                                           "rotation_loss": rot_weight, "head": head, "batch_size": p["batch_size"],
                                           "hidden": p["hidden"], "train_pool": p["train_pool"],
                                           "test_size": p["test_size"], "val_size": p["val_size"], **options})
                    result = train_lifting(cfg, body_model, train, test)
                    runs.append({"variant": variant, "condition": label, "seed": seed, "model": kind, **result})
    task = "; ".join(f"{BODY_MODELS[k]}, {hmr.body.load(BODY_MODELS[k]).num_joints} joints" for k in p["models"])
    return {"experiment": "prom-gap", "preset": preset, "task": f"keypoint lifting ({task})",
            "variants": VARIANTS, "conditions": conditions,
            "settings": {k: v for k, v in p.items() if k != "conditions"}, "runs": runs}
