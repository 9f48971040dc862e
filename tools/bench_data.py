#!/usr/bin/env python
"""Data-throughput benchmark: samples/s per data-loader worker of the training input pipeline (read, decode,
crop, augment, collate) for each reader, at the GPU presets' crop sizes, and the workers needed to feed a GPU.

    python tools/bench_data.py [--samples 512] [--target-rate 2000] [--data-root data/synthetic] [--json out.json]

Readers: ``photos_512`` (SPIN-npz reader on 512-pixel JPEGs of real photos: the issue's reference case, 256x192
crops), ``synthetic_body`` (SPIN-npz reader, the rendered body set), ``synthetic_hand`` (FreiHAND reader, the
rendered hand set, 224x224 crops), ``shards_512`` (the photo set converted to tar shards, read as a stream).
Synthetic readers are skipped (and said so) when their sets are not rendered. Baseline of the decoder ratios:
OpenCV's imdecode + BGR->RGB, measured in the same run.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hmr.data.bench_readers import run_data_benchmark  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=512, help="samples timed per reader")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--target-rate", type=float, default=2154.0,
                        help="GPU training rate to feed, images/s (default: the body ResNet-50 preset at 256x192, "
                             "bf16, batch 256, measured by tools/gpu_check.py on an H200: docs/scaling.md)")
    parser.add_argument("--data-root", default="data/synthetic", help="folder of the rendered synthetic sets")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = run_data_benchmark(Path(tmp), Path(args.data_root), args.samples, args.batch_size,
                                    args.target_rate)
    for line in report["lines"]:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
