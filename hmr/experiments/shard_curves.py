"""Does training from shards learn like training from the map-style readers? (``tools/compare_shards.py``)

Same config, same steps, several seeds each way; the two ways see different sample orders (a global
permutation vs shard-local streams), so their curves can only agree up to the spread that the seed alone
causes. The verdict compares the difference of the mean final losses with that spread.
"""
from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from hmr.config import load_config
from hmr.data import build_dataset
from hmr.data.registry import train_mixture
from hmr.data.shards import read_index, shard_folder, write_shards
from hmr.engine.run_folder import prepare_run_folder
from hmr.engine.trainer import Trainer
from hmr.utils.io import write_json

MODES = ("map", "shards")


def ensure_shards(config: Path, overrides: Sequence[str], shards_root: Path, shard_size: int) -> List[Path]:
    """Convert every set of ``data.train`` into ``<shards_root>/<name>/train`` unless it is already there."""
    cfg = load_config(config, [*overrides, f"data.shards={shards_root}"])
    folders = []
    for name in train_mixture(cfg)[0]:
        folder = shard_folder(cfg, name)
        try:
            read_index(folder)
        except FileNotFoundError:
            write_shards(build_dataset(name, "train", cfg, augment=False), folder, "train", shard_size=shard_size)
        folders.append(folder)
    return folders


def _losses(log_csv: Path) -> tuple[List[int], List[float]]:
    with open(log_csv) as handle:
        rows = list(csv.DictReader(handle))
    return [int(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


def run_comparison(config: Path, overrides: Sequence[str], shards_root: Path, out_dir: Path,
                   seeds: Sequence[int] = (0, 1), steps: int = 300, shard_size: int = 500,
                   tail: float = 0.2) -> Dict[str, Any]:
    """Train ``len(seeds)`` runs each way; final loss = mean logged loss over the last ``tail`` of the steps."""
    ensure_shards(config, overrides, shards_root, shard_size)
    curves: Dict[str, Dict[int, Dict[str, list]]] = {m: {} for m in MODES}
    for seed in seeds:
        for mode in MODES:
            extra = [f"train.seed={seed}", f"train.steps={steps}", "train.final_eval=false",
                     f"train.checkpoint_every={steps}", "train.tensorboard=false"]
            if mode == "shards":
                extra.append(f"data.shards={shards_root}")
            run_dir = out_dir / f"{mode}_seed{seed}"
            prepare_run_folder(run_dir, resume=False, overwrite=True)
            Trainer(load_config(config, [*overrides, *extra]), run_dir).run()
            step, loss = _losses(run_dir / "log.csv")
            curves[mode][seed] = {"step": step, "loss": loss}
    finals = {m: [float(np.mean([l for s, l in zip(c["step"], c["loss"]) if s > (1 - tail) * steps]))
                  for c in curves[m].values()] for m in MODES}
    spread = max(statistics.pstdev(finals[m]) if len(finals[m]) > 1 else 0.0 for m in MODES)
    seed_gap = max(abs(a - b) for m in MODES for a in finals[m] for b in finals[m])
    diff = statistics.mean(finals["shards"]) - statistics.mean(finals["map"])
    report = {
        "config": str(config), "overrides": list(overrides), "steps": steps, "seeds": list(seeds),
        "final_loss": {m: {"per_seed": finals[m], "mean": statistics.mean(finals[m])} for m in MODES},
        "shards_minus_map": diff, "largest_seed_gap_within_a_mode": seed_gap, "seed_std": spread,
        "within_seed_noise": abs(diff) <= seed_gap,
        "curves": {m: {str(s): c for s, c in curves[m].items()} for m in MODES},
    }
    write_json(out_dir / "shard_curves.json", report)
    plot_curves(report, out_dir / "shard_curves.png")
    return report


def plot_curves(report: Dict[str, Any], path: Path) -> None:
    """Loss against step, one line per run (map-style solid, shards dashed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, style in zip(MODES, ("-", "--")):
        for seed, curve in report["curves"][mode].items():
            loss = np.asarray(curve["loss"])
            k = max(1, len(loss) // 10)   # moving average over ~10 % of the run
            smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
            ax.plot(curve["step"][k - 1:], smooth, style, label=f"{mode}, seed {seed}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (moving average)")
    ax.set_title(f"map-style vs sharded streaming: shards - map = {report['shards_minus_map']:+.3f} "
                 f"(seed gap {report['largest_seed_gap_within_a_mode']:.3f})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
