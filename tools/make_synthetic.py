#!/usr/bin/env python
"""Render the synthetic body (SPIN/CLIFF npz) and hand (FreiHAND layout) sets from the open models.

Examples:
  python tools/make_synthetic.py --config configs/synthetic/quick.yaml
  python tools/make_synthetic.py --kind hand --workers 2 hand.splits.train=500 hand.name=hand_small
  python tools/make_synthetic.py --config configs/synthetic/default.yaml --root /data/synthetic
An interrupted run continues where it stopped when started again with the same settings.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

# One thread per process for the numeric libraries (set before numpy/torch load): see generator.SINGLE_THREAD_ENV.
for _key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hmr.config import ConfigError, load_config  # noqa: E402
from hmr.data.synthetic import SetSpec, generate_set  # noqa: E402
from hmr.utils.file_errors import describe_os_error  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs/synthetic/quick.yaml"), help="YAML preset")
    parser.add_argument("--kind", choices=("body", "hand", "both"), default="both", help="which set(s) to make")
    parser.add_argument("--root", help="output root (default: the config's root, data/synthetic)")
    parser.add_argument("--workers", type=int, help="worker processes (default: the config's)")
    parser.add_argument("--seed", type=int, help="random seed (default: the config's)")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing set of the same name first")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-contact-sheet", action="store_true", help="skip contact_sheet.png")
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value (e.g. body.splits.train=100)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kinds = ["body", "hand"] if args.kind == "both" else [args.kind]
    try:
        cfg = load_config(args.config, args.overrides)
        seed = int(args.seed if args.seed is not None else cfg.get("seed", 0))
        specs = [SetSpec.from_config(kind, cfg[kind].to_dict(), seed=seed) for kind in kinds]
    except (ConfigError, KeyError, ValueError, TypeError) as err:
        print(f"error: bad configuration: {err}", file=sys.stderr)
        return 2
    if args.seed is not None:
        for spec in specs:
            spec.seed = args.seed
    root = args.root or cfg.get("root", "data/synthetic")
    workers = args.workers if args.workers is not None else int(cfg.get("workers", 1))
    for spec in specs:
        try:
            summary = generate_set(spec, root=root, workers=workers, overwrite=args.overwrite,
                                   progress=not args.no_progress, contact_sheet=not args.no_contact_sheet)
        except OSError as err:
            print(f"error: {spec.kind} set {spec.name!r}: {describe_os_error(err, Path(root) / spec.name)}",
                  file=sys.stderr)
            return 1
        except ValueError as err:
            print(f"error: {spec.kind} set {spec.name!r}: {err}", file=sys.stderr)
            return 1
        t = summary["time"]
        print(f"{spec.kind} set {Path(root) / spec.name}: {json.dumps(summary['counts'])}; generated "
              f"{t['generated_images']} images in {t['render_seconds']} s ({t['images_per_second']} img/s, "
              f"{t['workers']} workers, {t['reused_shards']} shards reused); total {t['total_seconds']} s")
        print(f"  files: {', '.join(summary['files'])}; summary.json"
              + (f", {summary['contact_sheet']}" if "contact_sheet" in summary else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
