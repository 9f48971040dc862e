#!/usr/bin/env python
"""Render synthetic video sequences with ground truth (frames, video.mp4, labels.npz, manifest.json).

Examples:
  python tools/make_synthetic_video.py --preset crossing2 --out data/synthetic_video/crossing2
  python tools/make_synthetic_video.py --preset all --out data/synthetic_video          # one folder per preset
  python tools/make_synthetic_video.py --preset single_walk --out /tmp/tiny --frames 8 --size 96x72 --seed 3
Presets: see hmr.data.synthetic.sequences.SEQUENCE_PRESETS. Rerunning into a folder made with other settings is
refused unless --overwrite is given (which replaces only the files this tool writes).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

for _key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # small products: one thread is fastest
    os.environ.setdefault(_key, "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hmr.data.synthetic.sequences import SEQUENCE_PRESETS, preset, render_sequence  # noqa: E402
from hmr.utils.file_errors import describe_os_error  # noqa: E402


def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    return w, h


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help=f"one of {', '.join(SEQUENCE_PRESETS)}, or all")
    parser.add_argument("--out", required=True, help="output folder (with --preset all: one subfolder per preset)")
    parser.add_argument("--frames", type=int, help="number of frames (default: the preset's)")
    parser.add_argument("--seed", type=int, help="random seed (default: the preset's)")
    parser.add_argument("--fps", type=float, help="frames per second (default: 30)")
    parser.add_argument("--size", type=_size, help="image size WIDTHxHEIGHT (default: 640x480)")
    parser.add_argument("--backend", choices=("auto", "moderngl", "torch"), help="renderer backend (default: auto)")
    parser.add_argument("--overwrite", action="store_true", help="replace a sequence made with other settings")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.preset != "all" and args.preset not in SEQUENCE_PRESETS:
        parser.error(f"unknown preset {args.preset!r}; choose one of {', '.join(SEQUENCE_PRESETS)}, or all")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    overrides = {k: v for k, v in (("frames", args.frames), ("seed", args.seed), ("fps", args.fps),
                                   ("backend", args.backend)) if v is not None}
    if args.size is not None:
        overrides["width"], overrides["height"] = args.size
    names = list(SEQUENCE_PRESETS) if args.preset == "all" else [args.preset]
    try:
        specs = [preset(name, **overrides) for name in names]
    except (ValueError, TypeError) as err:
        print(f"error: bad settings: {err}", file=sys.stderr)
        return 2
    for name, spec in zip(names, specs):
        out = Path(args.out) / name if args.preset == "all" else Path(args.out)
        try:
            summary = render_sequence(spec, out, overwrite=args.overwrite, progress=not args.no_progress)
        except OSError as err:
            print(f"error: {name}: {describe_os_error(err, out)}", file=sys.stderr)
            return 1
        except (ValueError, RuntimeError) as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            return 1
        print(f"{name}: wrote {out}/ frames/%06d.jpg, video.mp4, labels.npz, manifest.json — {summary['frames']} "
              f"frames {spec.width}x{spec.height} at {spec.fps:g} fps, {summary['people']} "
              f"{'person' if summary['people'] == 1 else 'people'}, "
              f"{summary['rows']} label rows, {summary['seconds']} s ({summary['backend']} renderer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
