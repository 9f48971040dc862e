#!/usr/bin/env python
"""Train a regressor.

    python tools/train.py --config configs/body_cpu.yaml [--out outputs/run] [--resume | --overwrite] [key=value ...]
    torchrun --nproc_per_node 2 tools/train.py --config ...     (DDP: gloo on CPU, nccl on GPU)

A folder that already holds a run is refused unless --resume (continue it) or --overwrite (replace it) is given.
"""
import argparse
import os
import sys
from pathlib import Path

from hmr.config import ConfigError, load_config
from hmr.engine.checkpoint import CheckpointError
from hmr.engine.run_folder import RunFolderError, prepare_run_folder
from hmr.engine.trainer import Trainer, TrainingDiverged
from hmr.utils.file_errors import describe_os_error
from hmr.utils.logging import setup_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML experiment file")
    parser.add_argument("--out", default=None, help="run folder (default: outputs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run already in <out> (checkpoints, logs, summary) and start afresh")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.lr=3e-4")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("outputs") / Path(args.config).stem)
    try:
        if int(os.environ.get("RANK", "0")) == 0:   # under torchrun rank 0 alone prepares the folder
            prepare_run_folder(out, args.resume, args.overwrite)
        setup_logging(log_file=out / "train.log")
        summary = Trainer(cfg, out, resume=args.resume).run()
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (CheckpointError, ConfigError, RunFolderError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:   # an unwritable output folder, a full disk
        print(f"error: {describe_os_error(exc, out)}", file=sys.stderr)
        return 4
    if summary.get("eval"):
        counts = summary.get("eval_metric_samples", {})
        print("final evaluation:",
              ", ".join(f"{k}={v:.2f} (n={counts.get(k, '?')})" for k, v in summary["eval"].items()))
        for key, reason in summary.get("eval_refused_metrics", {}).items():
            print(f"  {key} refused: {reason}")
    print(f"steps: {summary['steps']} (skipped {summary['skipped_steps']}), "
          f"unreadable images: {summary['unreadable_images']}, {summary['seconds']} s")
    written = [f"{out}/checkpoints/last.pt", f"{out}/log.csv", f"{out}/summary.json"]
    if cfg.train.get("tensorboard", True):
        written.append(f"{out}/tensorboard/")
    print("wrote:", ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
