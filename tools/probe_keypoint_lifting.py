#!/usr/bin/env python
"""The 2D-keypoint oracle: how far do *perfect* 2D keypoints get on a dataset? (hmr/experiments/learnability.py)

    python tools/probe_keypoint_lifting.py [--config configs/body_cpu.yaml] [--dataset synth_body] \
        [--train-samples 20000] [--steps 6000] [--out lift.json] [key=value ...]

An MLP lifts ground-truth 2D keypoints (annotations only, no images) to root-relative 3D keypoints; prints its
test PA-MPJPE next to the training-mean predictor's. An image model far above this bound has not yet learned to
localise the keypoints.
"""
import logging
import sys

from hmr.experiments.learnability import LiftSettings, run_keypoint_lifting
from hmr.utils.cli import parse_settings, settings_parser
from hmr.utils.io import write_json


def main(argv=None) -> int:
    parser = settings_parser(__doc__, LiftSettings, "gives data root and sets")
    args, cfg, settings = parse_settings(parser, LiftSettings, argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = run_keypoint_lifting(cfg, settings)
    print(f"lifting ground-truth 2D keypoints on {settings.dataset}: {result['train_samples']} train / "
          f"{result['test_samples']} test")
    print(f"  mean predictor      test PA-MPJPE {result['mean_predictor_pa_mpjpe_mm']:7.1f} mm")
    for row in result["history"]:
        print(f"  step {row['step']:>6} ({row['seconds']:6.0f} s)  test PA-MPJPE {row['test_pa_mpjpe_mm']:7.1f} mm")
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
