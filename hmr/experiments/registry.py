"""The experiments behind ``tools/experiment.py``: names, presets, where results go.

Each experiment is a function ``run(preset, work_dir) -> dict`` (JSON-ready, with the settings it used); the registry
times it, stamps the machine and writes ``<out_root>/<name>/<preset>.json``. ``report`` reads those files
(:mod:`hmr.experiments.report`).
"""
from __future__ import annotations

import importlib
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import torch

from hmr.utils.io import write_json

log = logging.getLogger(__name__)
PRESETS = ("tiny", "cpu", "full")
# name -> "module:function"; order = the order of `all`
EXPERIMENTS: Dict[str, str] = {
    "prom-gap": "hmr.experiments.prom_gap:run",
    "convergence": "hmr.experiments.image_runs:convergence",
    "lr": "hmr.experiments.image_runs:learning_rates",
    "orthogonalization": "hmr.experiments.image_runs:orthogonalization",
    "downstream-only": "hmr.experiments.image_runs:downstream_only",
    "raw-fk": "hmr.experiments.image_runs:raw_fk",
    "prom-gap-images": "hmr.experiments.image_runs:prom_gap_images",
    "gradients": "hmr.experiments.rotation_tasks:gradients",
    "rotation-recovery": "hmr.experiments.rotation_tasks:rotation_recovery",
    "point-cloud": "hmr.experiments.rotation_tasks:point_cloud",
}


def names() -> list[str]:
    return list(EXPERIMENTS)


def _function(name: str) -> Callable[[str, Path], Dict[str, Any]]:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {names()} (or 'all', 'report')")
    module, func = EXPERIMENTS[name].split(":")
    return getattr(importlib.import_module(module), func)


def machine() -> Dict[str, Any]:
    """What the numbers were measured on."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def result_path(out_root: Path, name: str, preset: str) -> Path:
    return Path(out_root) / name / f"{preset}.json"


IMAGE_EXPERIMENTS = ("convergence", "lr", "orthogonalization", "downstream-only", "raw-fk", "prom-gap-images")


def run_experiment(name: str, preset: str, out_root: Path, collect_only: bool = False,
                   kinds: Optional[Sequence[str]] = None) -> Path:
    """Run one experiment with a preset and write its JSON; returns the path. Image experiments reuse finished
    runs in their work folder; ``collect_only`` (image experiments only) writes the JSON from those without
    training the missing ones; ``kinds`` (image experiments only): train and report only these sets (a part of
    the grid; a later invocation on every set gathers all finished runs)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")
    func = _function(name)
    t0 = time.time()
    work_dir = Path(out_root) / name / f"{preset}_work"  # checkpoints, logs, figures of the runs
    work_dir.mkdir(parents=True, exist_ok=True)
    if collect_only and name not in IMAGE_EXPERIMENTS:
        raise ValueError(f"--collect-only applies to the image experiments {IMAGE_EXPERIMENTS}, not {name!r}")
    if kinds is not None and name not in IMAGE_EXPERIMENTS:
        raise ValueError(f"--kinds applies to the image experiments {IMAGE_EXPERIMENTS}, not {name!r}")
    options = {"collect_only": True} if collect_only else {}
    if kinds is not None:
        options["kinds"] = tuple(kinds)
    result = func(preset, work_dir, **options)
    result.update(name=name, preset=preset, machine=machine(), wall_seconds=round(time.time() - t0, 1),
                  finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    path = result_path(out_root, name, preset)
    write_json(path, result)
    log.info("%s (%s) done in %.0f s: %s", name, preset, result["wall_seconds"], path)
    return path
