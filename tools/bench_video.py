#!/usr/bin/env python
"""The video pipeline on rendered sequences with ground truth: tracking (identity switches, MOTA), and MPJPE and
acceleration error per frame vs smoothed; time and frames/s of the whole demo (detection or given boxes,
regression, tracking, smoothing, export).

    python tools/make_synthetic_video.py --preset all --out data/synthetic_video     # the sequences
    python tools/bench_video.py --checkpoint CKPT --sequences data/synthetic_video [--boxes gt|blazepose]
        [--smooth savgol|one_euro|none] [--json out.json]

``--boxes gt`` feeds the ground-truth boxes (isolates tracking and smoothing from detection); a detector name
runs it. Baseline of the ratios: the same tracks unsmoothed (the regressor's per-frame output).
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hmr.utils.logging import setup_logging  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--sequences", required=True, help="a sequence folder, or a folder of them")
    parser.add_argument("--boxes", default="gt", help="gt, or a detector name (blazepose, hog, ...)")
    parser.add_argument("--smooth", default="savgol", choices=["savgol", "one_euro", "none"])
    parser.add_argument("--smooth-window", type=int, default=9)
    parser.add_argument("--no-region-tracking", action="store_true",
                        help="run the person detector on every frame (tools/demo.py --no-track)")
    parser.add_argument("--out", default=None, help="keep the demo outputs here (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    from hmr.demo.predictor import DemoModel
    from hmr.video.bench import evaluate_sequence, summarize
    root = Path(args.sequences)
    sequences = [root] if (root / "labels.npz").is_file() else sorted(p.parent for p in root.glob("*/labels.npz"))
    if not sequences:
        print(f"error: no sequence (labels.npz + video.mp4) under {root}; render them with "
              "tools/make_synthetic_video.py", file=sys.stderr)
        return 2
    model = DemoModel(args.checkpoint, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        results = [evaluate_sequence(seq, model, out / seq.name, args.boxes, args.smooth, args.smooth_window,
                                     progress=True, region_tracking=not args.no_region_tracking)
                   for seq in sequences]
    print(f"{'sequence':14s} {'frames':>6s} {'people':>6s} {'fps':>6s} {'IDsw':>5s} {'MOTA':>6s} "
          f"{'MPJPE raw':>9s} {'smooth':>7s} {'accel raw':>9s} {'smooth':>7s} {'GT':>5s}")
    for r in results:
        for p in r["per_person"]:
            if "accel_raw" not in p:
                continue
            print(f"{r['sequence']:14s} {p['frames']:6d} {r['people']:6d} {r['fps']:6.1f} {r['mot']['id_switches']:5d} "
                  f"{r['mot']['mota']:6.3f} {p['mpjpe_raw']:9.1f} {p['mpjpe_smooth']:7.1f} {p['accel_raw']:9.2f} "
                  f"{p['accel_smooth']:7.2f} {p['accel_gt']:5.2f}")
    total = summarize(results)
    if total.get("people"):
        print(f"all: acceleration error {total['accel_raw']:.2f} -> {total['accel_smooth']:.2f} mm/frame^2 "
              f"({total['accel_reduction']:.1f}x lower with {args.smooth}; goal >= 3x), MPJPE {total['mpjpe_raw']:.1f} "
              f"-> {total['mpjpe_smooth']:.1f} mm ({total['mpjpe_change_pct']:+.1f} %; goal <= +2 %), "
              f"identity switches {total['id_switches']} (goal 0)")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "summary": total}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
