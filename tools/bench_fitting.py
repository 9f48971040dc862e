#!/usr/bin/env python
"""Benchmark keypoint-guided fitting (hmr.fitting) on a synthetic test set: MPJPE / PA-MPJPE before and after
the fit, and seconds per person-frame. Trains nothing.

    python tools/make_synthetic.py --config configs/synthetic/quick.yaml --root /tmp/synth \\
        body.name=body_fit body.splits.train=0 body.splits.val=0 body.splits.test=50
    python tools/bench_fitting.py /tmp/synth/body_fit --num 50                 # perturbed-GT initialisation
    python tools/bench_fitting.py /tmp/synth/body_fit --checkpoint run/last.pt # the regressor's predictions
    python tools/bench_fitting.py /tmp/synth/hand_fit --set iterations=80 --conditions gt,noisy

Conditions: gt (GT 2D keypoints: the ceiling), noisy (+ Gaussian noise), occluded (noisy + a share of wrong,
low-confidence keypoints), detected (--detections FILE.npz with keypoints_2d (N, K, 3) = x, y, confidence in
sample order and joint_set, e.g. from a detector run on the set's images).
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hmr import body
from hmr.fitting import FitConfig
from hmr.fitting.bench import (detect_keypoints, load_synthetic_labels, mean_pose_init, perturb, regressor_init,
                               run_benchmark)
from hmr.utils.io import write_json
from hmr.utils.logging import setup_logging


def _config(kind: str, pairs) -> FitConfig:
    fields = {f.name: f.type for f in dataclasses.fields(FitConfig)}
    values = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in fields:
            raise ValueError(f"unknown FitConfig field {key!r}; known: {sorted(fields)}")
        values[key] = int(value) if fields[key] in (int, "int") else float(value)
    return FitConfig.preset(kind, **values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set_dir", help="synthetic set folder (body: <split>.npz; hand: FreiHAND layout)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num", type=int, default=50, help="first N samples")
    parser.add_argument("--checkpoint", help="initialise from this trained regressor (default: perturbed GT)")
    parser.add_argument("--body-model", help="default: open-smpl (body sets) / open-mano-right (hand sets)")
    parser.add_argument("--conditions", default="gt,noisy,occluded")
    parser.add_argument("--detections", help="npz with keypoints_2d (N, K, 3) and joint_set (adds 'detected')")
    parser.add_argument("--detect", action="store_true",
                        help="detect keypoints on the set's images with hmr.keypoints (adds 'detected')")
    parser.add_argument("--detect-set", help="joint set to map detections to (default openpose25 / freihand21)")
    parser.add_argument("--noise", type=float, default=0.02, help="keypoint noise, fraction of the box side")
    parser.add_argument("--wrong-share", type=float, default=0.2, help="occluded: share of wrong keypoints")
    parser.add_argument("--wrong-confidence", type=float, default=0.05, help="occluded: their confidence")
    parser.add_argument("--init", choices=["perturbed", "mean-pose"], default="perturbed",
                        help="without --checkpoint: perturbed GT, or the set's mean pose/shape with perturbed GT "
                             "orientation and camera (a weak regressor)")
    parser.add_argument("--perturb-deg", type=float, default=15.0, help="perturbed GT: RMS joint rotation error")
    parser.add_argument("--orient-deg", type=float, default=10.0, help="perturbed GT: RMS global orientation error")
    parser.add_argument("--betas-std", type=float, default=0.5)
    parser.add_argument("--depth-frac", type=float, default=0.1, help="perturbed GT: log-depth std")
    parser.add_argument("--batch-size", type=int, default=8, help="people fitted together (a frame's people)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="FitConfig fields over the kind's preset (FitConfig.preset)")
    parser.add_argument("--out", help="also write the report as JSON here")
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)
    try:
        labels = load_synthetic_labels(Path(args.set_dir), args.split, args.num)
        config = _config(labels.kind, args.set)
        regressor_seconds = None
        if args.checkpoint:
            model, init, regressor_seconds = regressor_init(args.checkpoint, Path(args.set_dir), args.num)
            init_name = f"regressor {args.checkpoint}"
        else:
            model = body.load(args.body_model or ("open-smpl" if labels.kind == "body" else "open-mano-right"))
            if args.init == "mean-pose":
                init = mean_pose_init(labels.params, args.seed, args.orient_deg, args.depth_frac)
                init_name = (f"mean pose and shape of the {len(labels)} samples, GT orientation + {args.orient_deg} "
                             f"deg RMS, log-depth std {args.depth_frac}")
            else:
                init = perturb(labels.params, args.seed, args.perturb_deg, args.orient_deg, args.betas_std,
                               args.depth_frac)
                init_name = (f"perturbed GT (joints {args.perturb_deg} deg RMS, orientation {args.orient_deg} deg, "
                             f"betas std {args.betas_std}, log-depth std {args.depth_frac})")
        conditions = [c for c in args.conditions.split(",") if c]
        detections = None
        if args.detections:
            data = np.load(args.detections)
            kp = torch.as_tensor(data["keypoints_2d"], dtype=torch.float32)
            detections = (str(data["joint_set"]), kp[..., :2], kp[..., 2])
            conditions.append("detected")
        elif args.detect:
            joint_set, kp, conf, missed = detect_keypoints(Path(args.set_dir), labels.kind, args.split, args.num,
                                                           args.detect_set)
            detections = (joint_set, kp, conf)
            conditions.append("detected")
            print(f"detected {joint_set} keypoints with hmr.keypoints on {len(kp)} images ({missed} without a "
                  "detection: those fall back)")
        started = time.perf_counter()
        report = run_benchmark(model, labels, init, config, conditions, args.batch_size, args.noise,
                               args.wrong_share, args.wrong_confidence, args.seed, init_name, detections)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report.update(threads=args.threads, seconds_total=round(time.perf_counter() - started, 1),
                  regressor_seconds=regressor_seconds, set=str(args.set_dir), split=args.split)
    print(f"protocol: {report['protocol']}")
    print(f"{report['samples']} samples of {args.set_dir} ({args.split}); init: {report['init']}; "
          f"{config.camera_iterations}+{config.iterations} iterations, {args.batch_size} people per batch, "
          f"{args.threads} thread(s)")
    before = report["before"]
    print(f"  {'condition':<10} {'MPJPE mm':>18} {'PA-MPJPE mm':>18} {'2D err px':>16} {'s/person-frame':>15}"
          f" {'fell back':>9} {'swapped':>7}")
    for name, row in report["conditions"].items():
        after = row["after"]
        print(f"  {name:<10} {before['mpjpe_mm']:7.1f} -> {after['mpjpe_mm']:6.1f} ({row['mpjpe_change_pct']:+.0f}%)"
              f" {before['pa_mpjpe_mm']:6.1f} -> {after['pa_mpjpe_mm']:6.1f} ({row['pa_mpjpe_change_pct']:+.0f}%)"
              f" {row['keypoint_error_px_before']:6.1f} -> {row['keypoint_error_px_after']:5.1f}"
              f" {row['seconds_per_person_frame']:15.3f} {row['fell_back']:9d} {row['left_right_swapped']:7d}")
    if args.out:
        write_json(Path(args.out), json.loads(json.dumps(report, default=str)))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
