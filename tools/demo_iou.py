#!/usr/bin/env python
"""Silhouette IoU of a body checkpoint on a synthetic body set (rendered prediction vs rendered ground truth).

    python tools/demo_iou.py --checkpoint CKPT --npz data/synthetic/body_quick/test.npz [--max-samples 32]

Uses the set's boxes and focal lengths (no detector); the ground-truth mesh is rebuilt with open-smpl from the
npz (rotmat, shape, transl) and both are rendered with the full-frame camera. Prints mean and median IoU.
--fit also fits each prediction to BlazePose's keypoints on the rendered image, as `tools/demo.py --fit` does
(where its person detector finds nobody, the landmark network runs in the set's box, as the demo does with
--bbox), and prints the fitted meshes' IoU on the same samples.
"""
import argparse
import sys
from pathlib import Path

from hmr.demo import DemoModel, synthetic_mask_iou
from hmr.demo.fitting import DemoFitter
from hmr.demo.keypoint_detectors import BlazePoseDetector, BoxKeypoints, missing_networks
from hmr.engine.checkpoint import CheckpointError
from hmr.utils.io import write_json
from hmr.utils.logging import setup_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="trained body checkpoint (.pt)")
    parser.add_argument("--npz", required=True, help="synthetic body set npz (e.g. <set>/test.npz)")
    parser.add_argument("--max-samples", type=int, help="use the first N samples")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", help="also write the result (with per-sample IoU) as JSON")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fit", action="store_true",
                        help="also score the meshes fitted to BlazePose keypoints detected on each image")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    try:
        model = DemoModel(args.checkpoint, args.device)
        fitter = detector = in_box = None
        if args.fit:
            missing = missing_networks("body")
            if missing:
                raise FileNotFoundError(missing)
            fitter, detector, in_box = DemoFitter(model, fit=True), BlazePoseDetector(), BoxKeypoints()
        result = synthetic_mask_iou(model, args.npz, args.max_samples, batch_size=args.batch_size,
                                    fitter=fitter, detector=detector, box_keypoints=in_box)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['protocol']} | {result['count']} samples | body model {result['body_model']} | "
          f"representation {result['representation']}")
    print(f"  mean IoU    {result['mean_iou']:.4f}")
    print(f"  median IoU  {result['median_iou']:.4f}")
    if "fitted" in result:
        fitted = result["fitted"]
        print(f"  fitted to detected keypoints: mean IoU {fitted['mean_iou']:.4f}, median {fitted['median_iou']:.4f} "
              f"({', '.join(f'{k} {v}' for k, v in fitted['status_counts'].items())}; keypoints from the landmark "
              f"network in the set's box on {fitted['keypoints_in_the_box']})")
    if args.out:
        write_json(Path(args.out), result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
