#!/usr/bin/env python
"""Is a dataset learnable by a from-scratch backbone, and does it generalise? (hmr/experiments/learnability.py)

    python tools/probe_learnability.py [--config configs/body_cpu.yaml] [--dataset synth_body] \
        [--backbone mobilenetv3_small_100] [--train-samples 2000] [--steps 1000] [--out probe.json] [key=value ...]

Prints train and test errors (2D keypoints in half-bbox units, squared Frobenius errors of the global orientation
and of the local joint matrices) next to the training-mean predictor; a model that only memorises shows falling
train and flat test errors.
"""
import logging
import sys

from hmr.experiments.learnability import ProbeSettings, run_probe
from hmr.utils.cli import parse_settings, settings_parser
from hmr.utils.io import write_json


def main(argv=None) -> int:
    parser = settings_parser(__doc__, ProbeSettings, "gives data root, sets and crop size")
    args, cfg, settings = parse_settings(parser, ProbeSettings, argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = run_probe(cfg, settings)
    fmt = lambda e: "  ".join(f"{k} {v:6.3f}" for k, v in e.items())  # noqa: E731
    print(f"{settings.backbone} on {settings.dataset}: {result['train_images']} train / {result['test_images']} "
          f"test crops {list(cfg.data.crop_size)}")
    print(f"  mean predictor      test: {fmt(result['mean_predictor']['test'])}")
    for row in result["history"]:
        print(f"  step {row['step']:>6} ({row['seconds']:6.0f} s)  train: {fmt(row['train'])}   test: {fmt(row['test'])}")
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
