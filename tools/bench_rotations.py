"""Rotation benchmark: Zhou 2019 rotation recovery for every representation + orthogonalizer speed.

    python tools/bench_rotations.py --preset quick --out runs/bench_rotations
    python tools/bench_rotations.py --only speed --out runs/bench_speed
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from hmr.rotations import names
from hmr.rotations.benchmark import (PRESETS, PUBLISHED, orthogonalizer_speed, preset_dict, recovery_table,
                                     rotation_recovery, speed_table)
from hmr.utils.io import write_json, write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--only", choices=["all", "recovery", "speed"], default="all")
    parser.add_argument("--representations", nargs="+", default=None, help=f"subset of {names()}")
    parser.add_argument("--speed-batches", nargs="+", type=int, default=[64, 1536, 100_000])
    parser.add_argument("--speed-repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    reps = args.representations or names()
    unknown = sorted(set(reps) - set(names()))
    if unknown:
        parser.error(f"unknown representations {unknown}; expected some of {names()}")
    report = {"preset": args.preset, "preset_settings": preset_dict(args.preset), "threads": args.threads}
    markdown = []
    if args.only in ("all", "recovery"):
        rows = []
        for name in reps:
            rows.append(rotation_recovery(name, PRESETS[args.preset], seed=args.seed))
            print(f"{name}: mean {rows[-1]['mean_deg']:.3f} deg, max {rows[-1]['max_deg']:.2f}, "
                  f"std {rows[-1]['std_deg']:.3f} ({rows[-1]['train_seconds']:.0f} s)", flush=True)
        report["recovery"] = rows
        report["published"] = {k: dict(zip(("mean_deg", "max_deg", "std_deg"), v)) for k, v in PUBLISHED.items()}
        markdown.append(recovery_table(rows, args.preset))
    if args.only in ("all", "speed"):
        speed = orthogonalizer_speed(tuple(args.speed_batches), repeats=args.speed_repeats, seed=args.seed)
        report["speed"] = speed
        markdown.append(speed_table(speed))
    write_json(args.out / "bench_rotations.json", report)
    write_text(args.out / "bench_rotations.md", "\n".join(markdown))
    print("\n".join(markdown))
    print(f"wrote {args.out / 'bench_rotations.json'} and {args.out / 'bench_rotations.md'}")


if __name__ == "__main__":
    main()
