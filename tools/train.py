#!/usr/bin/env python
"""Train a regressor.

    python tools/train.py --config configs/body_cpu.yaml [--out outputs/run] [--resume] [key.sub=value ...]
    torchrun --nproc_per_node 2 tools/train.py --config ...     (DDP: gloo on CPU, nccl on GPU)
"""
import argparse
import sys
from pathlib import Path

from hmr.config import ConfigError, load_config
from hmr.engine.checkpoint import CheckpointError
from hmr.engine.trainer import Trainer, TrainingDiverged
from hmr.utils.logging import setup_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML experiment file")
    parser.add_argument("--out", default=None, help="run folder (default: outputs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.lr=3e-4")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("outputs") / Path(args.config).stem)
    setup_logging(log_file=out / "train.log")
    try:
        summary = Trainer(cfg, out, resume=args.resume).run()
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (CheckpointError, ConfigError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if summary.get("eval"):
        print("final evaluation:", ", ".join(f"{k}={v:.2f}" for k, v in summary["eval"].items()))
    print(f"steps: {summary['steps']} (skipped {summary['skipped_steps']}), {summary['seconds']} s")
    print(f"wrote: {out}/checkpoints/last.pt, {out}/log.csv, {out}/summary.json, {out}/tensorboard/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
