"""Forward + backward images/s of each backbone at its preset input size (the presets' frozen landmark read-out:
forward only, paid once per cached crop; MediaPipe networks in CPU chunks of 4 images, and on whole batches
for comparison), against MobileNetV3-small (96x72,
from scratch: the earlier CPU preset) measured in the same run (hmr/models/benchmark.py).

    python tools/bench_backbones.py [--batch 32] [--repeats 5] [--threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hmr.models.benchmark import BackboneVariant, benchmark_backbones  # noqa: E402
from hmr.utils.io import write_json  # noqa: E402

DEFAULT_VARIANTS = (
    BackboneVariant("efficientnet_lite0", (128, 96), pretrained=True),
    BackboneVariant("efficientnet_lite0", (128, 96), pretrained=True, frozen=True),
    BackboneVariant("blazepose_full", (128, 96), pretrained=True),
    BackboneVariant("blazepose_full", (128, 96), pretrained=True, micro_batch=None),
    BackboneVariant("blazepose_full", (128, 96), pretrained=True, frozen=True),
    BackboneVariant("mediapipe_hand", (96, 96), pretrained=True),
    BackboneVariant("mediapipe_hand", (96, 96), pretrained=True, frozen=True),
    BackboneVariant("blazepose_full", (256, 256), pretrained=True, frozen=True, pooling="landmarks"),
    BackboneVariant("blazepose_full", (256, 256), pretrained=True, frozen=True, pooling="landmarks",
                    micro_batch=None),
    BackboneVariant("mediapipe_hand", (224, 224), pretrained=True, frozen=True, pooling="landmarks"),
    BackboneVariant("mediapipe_hand", (224, 224), pretrained=True, frozen=True, pooling="landmarks",
                    micro_batch=None),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the rows here as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = benchmark_backbones(DEFAULT_VARIANTS, batch=args.batch, repeats=args.repeats)
    print(f"train step (forward + backward), batch {args.batch}, {args.threads} threads, median of "
          f"{args.repeats}; baseline = {rows[0].label}")
    print(f"{'backbone':<56} {'images/s':>9} {'vs base':>8} {'features':>9} {'params (M)':>10}")
    for row in rows:
        print(f"{row.label:<56} {row.images_per_s:>9.1f} {row.vs_baseline:>7.2f}x {row.feature_dim:>9d} "
              f"{row.parameters_m:>10.2f}")
    if args.json:
        write_json(args.json, [r.as_dict() for r in rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
