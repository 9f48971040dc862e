#!/usr/bin/env python
"""Training-step time per rotation representation, interleaved in one run, as ratios to a baseline.

    python tools/bench_train.py [--config configs/body_cpu.yaml] [--reps prom 6d svd9d] [--repeats 10]
"""
import argparse
import json
import sys

import torch

from hmr.config import load_config
from hmr.engine.bench import time_train_steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/body_cpu.yaml")
    parser.add_argument("--reps", nargs="+", default=["prom", "6d", "svd9d"])
    parser.add_argument("--baseline", default="6d", help="representation the ratios are relative to")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    if args.baseline not in args.reps:
        args.reps.append(args.baseline)
    result = time_train_steps(cfg, args.reps, args.repeats)
    base = result[args.baseline]["median_s"]
    print(f"training step, {cfg.model.backbone} {cfg.model.input_size}, batch {cfg.train.batch_size}, "
          f"{cfg.body_model.name}, {args.threads} thread(s), median of {args.repeats} interleaved steps")
    for name, t in result.items():
        print(f"  {name:<12} {1000 * t['median_s']:8.1f} ms   ratio vs {args.baseline}: {t['median_s'] / base:5.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"config": args.config, "baseline": args.baseline, "result": result}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
