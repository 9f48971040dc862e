#!/usr/bin/env python
"""Evaluate a checkpoint on a benchmark with its protocol.

    python tools/eval.py --config CFG --checkpoint CKPT --dataset NAME [--split test] [--out results.json]
    python tools/eval.py --config CFG --dataset synth_body --oracle      # GT through the same path: must be 0
    python tools/eval.py --config CFG --baseline mean-pose                # the training set's mean pose

Writes the JSON (metrics with the number of samples each scored + protocol + data paths + mappings + time),
<out>.per_sample.npz, and with --render N the N best and worst samples as overlay PNGs next to the JSON. A metric
is scored on the samples that have the ground truth it needs; one that no sample supports is refused (listed,
not reported as 0).

The checkpoint fixes the architecture (model, body model, representation, crop size); --config contributes its
data and eval sections; overrides (key=value) may change data.*, eval.* and representation.* (e.g.
representation.inference=train); an override that contradicts the checkpoint or only affects training is refused.
"""
import argparse
import json
import sys
from pathlib import Path

from hmr.config import ConfigError
from hmr.engine.checkpoint import CheckpointError, load_checkpoint
from hmr.engine.eval_config import resolve_eval_config
from hmr.engine.eval_job import run_eval
from hmr.utils.logging import setup_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (default: the one stored in the checkpoint)")
    parser.add_argument("--checkpoint", help="trained checkpoint (.pt)")
    parser.add_argument("--dataset", help="registry dataset name (default: eval.dataset of the config)")
    parser.add_argument("--split", default=None, help="train | val | test (default: eval.split, else test)")
    parser.add_argument("--out", default="results.json", help="JSON output path")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None, help="data-loading worker processes")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N samples")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--oracle", action="store_true", help="score ground truth through the same path")
    parser.add_argument("--baseline", choices=["mean-pose"], help="score a baseline instead of a model")
    parser.add_argument("--render", type=int, default=0, metavar="N", help="render the N best and worst samples")
    parser.add_argument("--refit", action="store_true",
                        help="also score the inference mesh after refitting betas + translation to the "
                             "training-time skeleton (PRoM's train/inference gap, refit_* metrics)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.root=/datasets")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        stored = load_checkpoint(args.checkpoint)["config"] if args.checkpoint else None
        cfg = resolve_eval_config(stored, args.config, args.overrides, args.checkpoint or "the checkpoint")
        report = run_eval(cfg, args.checkpoint, args.dataset, args.split, Path(args.out), args.batch_size,
                          args.workers, args.max_samples,
                          "oracle" if args.oracle else (args.baseline or "model"), args.render, args.device,
                          args.refit)
    except (ConfigError, CheckpointError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    protocol = report["protocol"]
    print(f"protocol: {protocol['name']} | dataset {report['dataset']['name']}/{report['dataset']['split']} | "
          f"joints {protocol['joint_set']} | alignment {protocol['alignment']} | "
          f"GT model {protocol['gt_body_model']} | {report['count']} readable samples, "
          f"unreadable images: {report['unreadable']} | inference mapping: {report['inference_mapping']}"
          + ("" if report["source"] == "model" else f" | source: {report['source'].upper()}"))
    width = max(len(k) for k in [*report["metrics"], *report["refused_metrics"]])
    for key, value in report["metrics"].items():
        print(f"  {key:<{width}}  {value:10.3f}  (n={report['metric_samples'][key]})")
    for key, reason in report["refused_metrics"].items():
        print(f"  {key:<{width}}  refused: {reason}")
    print(f"wrote {args.out} and {report['per_sample_file']}")
    for label, paths in report.get("renders", {}).items():
        print(f"  {label}: {len(paths)} overlays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
