"""The evaluation job behind ``tools/eval.py``: load a checkpoint, evaluate one dataset with its protocol,
write JSON (metrics + protocol + counts + time), per-sample errors (npz) and optional best/worst renders."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch

from hmr.config import Config, merge
from hmr.engine.builders import build_body_model, build_model, build_representation
from hmr.engine.checkpoint import CheckpointError, check_compatible, load_checkpoint
from hmr.engine.eval_config import check_architecture, data_description
from hmr.engine.evaluator import evaluate_config
from hmr.utils.io import save_npz, write_json

log = logging.getLogger(__name__)


def load_trained(checkpoint: Optional[str], cfg: Optional[Mapping[str, Any]] = None, device: str = "cpu"):
    """(config, model, body model, representation) from a checkpoint. ``cfg`` (the evaluation config from
    :func:`~hmr.engine.eval_config.resolve_eval_config`, or just the expected ``body_model.name`` /
    ``representation.name``) is merged over the stored config; body model, representation and architecture must
    match the checkpoint (:class:`~hmr.engine.checkpoint.CheckpointError`)."""
    if checkpoint is None:
        if cfg is None:
            raise ValueError("give a checkpoint, or a config for the oracle / mean-pose sources")
        merged, payload = Config(cfg), None
    else:
        payload = load_checkpoint(checkpoint)
        stored = payload["config"]
        if cfg is not None:
            check_compatible(payload, cfg["body_model"]["name"], cfg["representation"]["name"], checkpoint)
            check_architecture(stored, cfg, checkpoint)
        merged = Config(merge(stored, cfg or {}))
    body_model = build_body_model(merged).to(device)
    representation = build_representation(merged)
    model = None
    if payload is not None:
        model = build_model(merged, body_model, representation)
        try:
            model.load_state_dict(payload["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"the weights in {checkpoint} do not fit the model its config describes "
                                  f"(representation options?): {str(exc).splitlines()[0]}") from exc
        model.to(device).eval()
    return merged, model, body_model, representation


def run_eval(cfg: Optional[Mapping[str, Any]], checkpoint: Optional[str], dataset: Optional[str],
             split: Optional[str], out: Path, batch_size: Optional[int] = None, num_workers: Optional[int] = None,
             max_samples: Optional[int] = None, source: str = "model", render: int = 0,
             device: str = "cpu", refit: bool = False) -> Dict[str, Any]:
    """Evaluate and write ``out`` (JSON) plus ``out`` with suffix ``.per_sample.npz``; returns the JSON dict.
    ``refit`` adds the metrics of the consistency-refitted inference mesh (``refit_*``, issue 9 fix 4).
    The JSON says per metric how many samples it scored (``metric_samples``), which metrics were refused for
    want of labelled samples (``refused_metrics``), the data read (``data``) and the mappings used."""
    merged, model, body_model, representation = load_trained(checkpoint, cfg, device)
    if model is None and source == "model":
        raise ValueError("a checkpoint is required unless --oracle or --baseline mean-pose is given")
    result = evaluate_config(merged, model, body_model, representation, dataset, split, max_samples, source,
                             batch_size, num_workers, refit)
    raw = result.pop("raw")
    out = Path(out)
    per_sample_path = out.with_suffix(".per_sample.npz")
    save_npz(per_sample_path, index=raw["index"][raw["valid"] > 0].astype(np.int64),
             **{k: v.astype(np.float32) for k, v in result["per_sample"].items()})
    rep = merged["representation"]
    report = {
        "metrics": result["metrics"], "metric_samples": result["metric_samples"],
        "refused_metrics": result["refused"], "units": "mm (distances), fraction (AUC, F-scores)",
        "protocol": result["protocol"], "dataset": result["dataset"],
        "data": data_description(merged, result["dataset"]["name"], result["dataset"]["split"]),
        "count": result["count"], "unreadable": result["unreadable"], "source": source, "checkpoint": checkpoint,
        "representation": result["representation"], "inference_mapping": result["inference_mapping"],
        "mappings": {k: rep.get(k) for k in ("rotation_loss", "forward_kinematics", "inference")},
        "representation_options": dict(rep.get("options") or {}),
        "body_model": merged["body_model"]["name"], "seconds": result["seconds"],
        "per_sample_file": str(per_sample_path),
    }
    if result.get("gap") is not None:
        report["train_inference_gap"] = {k: v for k, v in result["gap"].items() if k != "metrics"}
    if render and source == "model":
        report["renders"] = render_extremes(merged, raw, result["per_sample"], body_model, out.parent, render,
                                            result["dataset"]["name"], result["dataset"]["split"])
    write_json(out, report)
    return report


def render_extremes(cfg: Mapping[str, Any], raw: Mapping[str, np.ndarray], per_sample: Mapping[str, np.ndarray],
                    body_model, out_dir: Path, count: int, dataset_name: Optional[str] = None,
                    split: Optional[str] = None) -> Dict[str, list]:
    """Overlay PNGs (full-frame camera + side view) of the ``count`` best and worst scored samples by the
    protocol's main error (PA-MPJPE)."""
    from hmr.data import build_dataset
    from hmr.data.image import ImageReadError, read_image
    from hmr.vis.overlay import save_overlay
    key = next((k for k in ("pa_mpjpe", "mpjpe") if k in per_sample), None)
    if key is None:
        return {}
    ecfg = cfg.get("eval") or {}
    dataset = build_dataset(dataset_name or ecfg.get("dataset"), split or ecfg.get("split", "test"), cfg.get("data"),
                            augment=False)
    valid_rows = np.nonzero(raw["valid"] > 0)[0]
    scored = np.nonzero(np.isfinite(per_sample[key]))[0]
    order = scored[np.argsort(per_sample[key][scored])]
    faces = body_model.faces.cpu().numpy()
    written: Dict[str, list] = {"best": [], "worst": []}
    for label, picks in (("best", order[:count]), ("worst", order[::-1][:count])):
        for rank, p in enumerate(picks):
            row = valid_rows[p]
            index = int(raw["index"][row])
            try:
                image = read_image(dataset.annotation(index).image_path)
            except ImageReadError as exc:
                log.warning("cannot render sample %d: %s", index, exc)
                continue
            verts = raw["pred_vertices"][row] + raw["pred_transl"][row][None]
            path = out_dir / f"{label}_{rank:02d}_sample{index}_{key}{1000 * per_sample[key][p]:.0f}mm.png"
            save_overlay(path, image, verts, faces, float(raw["focal"][row]))
            written[label].append(str(path))
    return written
