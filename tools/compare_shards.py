#!/usr/bin/env python
"""Training from shards vs the map-style readers: the same config and steps, several seeds each way; loss
curves (PNG), final losses per seed and whether their difference is within the seeds' own spread (JSON).

    python tools/compare_shards.py --config configs/body_cpu.yaml --shards data/shards --out outputs/shard_curves \
        [--seeds 0 1] [--steps 300] [key=value ...]

The sets of ``data.train`` are converted into ``<shards>/<name>/train`` first if they are not there yet.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hmr.config import ConfigError  # noqa: E402
from hmr.experiments.shard_curves import run_comparison  # noqa: E402
from hmr.utils.logging import setup_logging  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--shards", required=True, help="shard root (data.shards)")
    parser.add_argument("--out", default="outputs/shard_curves")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("overrides", nargs="*", help="config overrides for every run")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        report = run_comparison(Path(args.config), args.overrides, Path(args.shards), Path(args.out),
                                seeds=args.seeds, steps=args.steps, shard_size=args.shard_size)
    except (ConfigError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for mode, final in report["final_loss"].items():
        per_seed = ", ".join(f"{v:.4f}" for v in final["per_seed"])
        print(f"{mode:7s} final loss per seed: {per_seed}  (mean {final['mean']:.4f})")
    print(f"shards - map: {report['shards_minus_map']:+.4f}; largest gap between two seeds of one mode: "
          f"{report['largest_seed_gap_within_a_mode']:.4f} -> "
          f"{'within' if report['within_seed_noise'] else 'OUTSIDE'} seed noise")
    print(f"wrote {args.out}/shard_curves.json, {args.out}/shard_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
