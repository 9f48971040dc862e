#!/usr/bin/env python
"""Training-step time per rotation representation, interleaved in one run, as ratios to a baseline.

    python tools/bench_train.py [--config configs/body_cpu.yaml] [--reps prom 6d svd9d] [--repeats 10]
    python tools/bench_train.py --reps prom --baseline prom --decode mesh keypoints   # the trainer's two decode paths

Each step runs the whole network on random images (no feature cache); ``--decode keypoints`` times the path the
trainer takes without a vertex loss (keypoints straight from pose and shape, no mesh skinned).
"""
import argparse
import json
import sys

import torch

from hmr.config import load_config
from hmr.engine.bench import DECODE_PATHS, time_train_steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/body_cpu.yaml")
    parser.add_argument("--reps", nargs="+", default=["prom", "6d", "svd9d"])
    parser.add_argument("--baseline", default="6d", help="representation the ratios are relative to")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decode", nargs="+", default=["mesh"], choices=sorted(DECODE_PATHS),
                        help="decode paths to time (ratios are against the baseline's mesh path)")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    if args.baseline not in args.reps:
        args.reps.append(args.baseline)
    if "mesh" not in args.decode:   # the baseline is always the mesh path
        args.decode.insert(0, "mesh")
    result = time_train_steps(cfg, args.reps, args.repeats, decode_paths=args.decode)
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
