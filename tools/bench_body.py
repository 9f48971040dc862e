#!/usr/bin/env python
"""Benchmark body-model forward kinematics: hmr.body.BodyModel vs smplx.lbs.lbs on the same tensors.

    python tools/bench_body.py [--batches 1 64 512] [--repeats 10] [--device cpu] [--threads 1] [--json out.json]

Times are medians over interleaved repeats; "speedup" = smplx time / ours (> 1: ours is faster).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["open-smpl", "open-mano-right"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64, 512])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()

    import torch

    from hmr.body.benchmark import run_benchmark
    from hmr.utils.io import write_json

    torch.set_num_threads(args.threads)
    rows = run_benchmark(args.models, args.batches, args.repeats, args.warmup, args.device,
                         getattr(torch, args.dtype))
    print(f"device={args.device} dtype={args.dtype} threads={args.threads} repeats={args.repeats} (medians)")
    print(f"{'model':<16}{'B':>5} {'mode':<17}{'ours ms':>10}{'smplx ms':>10}{'speedup':>9}{'ours MB':>9}{'smplx MB':>9}")
    for r in rows:
        print(f"{r.model:<16}{r.batch:>5} {r.mode:<17}{r.ours_ms:>10.2f}{r.smplx_ms:>10.2f}{r.speedup:>8.2f}x"
              f"{r.ours_peak_mb:>9.1f}{r.smplx_peak_mb:>9.1f}")
    if args.json:
        write_json(args.json, {"device": args.device, "dtype": args.dtype, "threads": args.threads,
                               "repeats": args.repeats, "rows": [r.as_dict() for r in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
