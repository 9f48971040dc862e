"""Issue 9's fourth fix on images: the inference-time consistency refit (:mod:`hmr.engine.refit`: betas and
translation refitted so that the exported SVD skeleton matches the trained raw-matrix one) applied to the final
checkpoint of each seed's plain-PRoM run of ``prom-gap-images``. It is an evaluation, not a training run: the
condition ``prom+refit`` reuses plain PRoM's checkpoints and the same test images, so it pairs with ``prom`` seed
by seed. Results are stored next to the run (``refit_eval.json``) and reused.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from hmr.experiments.seed_stats import finished
from hmr.utils.io import write_json

LABEL = "prom+refit"
SOURCE_LABEL = "prom"
STORED = "refit_eval.json"


def refit_metrics(run_dir: Path, max_samples: Optional[int], feature_cache: Optional[Path] = None
                  ) -> Dict[str, float]:
    """Evaluate ``run_dir``'s last checkpoint with the refit on its preset's test images (the cached test
    features when the run trained on cached features); returns the evaluator's metrics."""
    import torch

    from hmr.engine.eval_job import load_trained
    from hmr.engine.evaluator import evaluate_config
    from hmr.engine.feature_store import evaluation_cache
    checkpoint = run_dir / "checkpoints" / "last.pt"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no final checkpoint {checkpoint}: train the run first")
    cfg, model, body_model, representation = load_trained(str(checkpoint))
    dataset = None
    if cfg.train.get("cache_features"):
        if feature_cache is not None:
            cfg.train["feature_cache_dir"] = str(feature_cache)
        dataset = evaluation_cache(cfg, model.backbone, torch.device("cpu"), max_samples)
    with torch.no_grad():
        result = evaluate_config(cfg, model, body_model, representation, max_samples=max_samples,
                                 dataset=dataset, refit=True)
    return result["metrics"]


def as_condition(metrics: Mapping[str, float]) -> Dict[str, float]:
    """The refitted mesh's metrics under the plain names the report reads (``pa_mpjpe_mm`` ← ``refit_pa_mpjpe_mm``;
    its remaining gap to the trained skeleton as ``inference_gap_mpjpe_mm``), plus the betas drift."""
    final = {k[len("refit_"):]: v for k, v in metrics.items()
             if k.startswith("refit_") and k not in ("refit_gap_mpjpe_mm", "refit_betas_drift")}
    final["inference_gap_mpjpe_mm"] = metrics["refit_gap_mpjpe_mm"]
    final["betas_drift"] = metrics["refit_betas_drift"]
    return final


def refit_runs(runs: Sequence[Mapping[str, Any]], run_dirs: Sequence[Path], max_samples: Optional[int],
               feature_cache: Optional[Path], collect_only: bool) -> List[Dict[str, Any]]:
    """One ``prom+refit`` record per finished ``prom`` run (``run_dirs`` in the same order as ``runs``): its
    stored refit evaluation, computed now unless ``collect_only``; ``not_run`` when neither."""
    records = []
    for run, run_dir in zip(runs, run_dirs):
        if run["label"] != SOURCE_LABEL:
            continue
        record = {"label": LABEL, "seed": run["seed"], "kind": run["kind"], "overrides": run["overrides"],
                  "diverged": False, "history": [], "final": {}}
        stored = Path(run_dir) / STORED
        if not stored.is_file() and finished(run) and not collect_only:
            write_json(stored, {"checkpoint": str(Path(run_dir) / "checkpoints" / "last.pt"),
                                "max_samples": max_samples,
                                "metrics": refit_metrics(Path(run_dir), max_samples, feature_cache)})
        if stored.is_file():
            record["final"] = as_condition(json.loads(stored.read_text())["metrics"])
        else:
            record["not_run"] = True
        records.append(record)
    return records
