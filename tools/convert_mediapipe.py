#!/usr/bin/env python
"""Convert MediaPipe's .tflite networks into torch files (hmr/models/mediapipe), or check converted ones.

    python tools/convert_mediapipe.py --wheel .cache/wheels/mediapipe-0.10.21-*.whl [--out DIR] [--force]
    python tools/convert_mediapipe.py --check [--out DIR]         (exit 1 when a file is missing or wrong)

Get the wheel with ``pip download --no-deps mediapipe==0.10.21`` (``bash scripts/setup_env.sh`` does both steps).
``--wheel`` also takes a folder holding the .tflite files or a single .tflite file. Every .tflite is checked
against its pinned sha256; files that already verify are kept unless ``--force``. Default output:
``weights/mediapipe`` (``$HMR_WEIGHTS_DIR/mediapipe`` when set).
"""
import argparse
import sys

from hmr.models.mediapipe import NETWORKS, check_all, convert, default_weights_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", help="mediapipe==0.10.21 wheel, a folder with the .tflite files, or one .tflite")
    parser.add_argument("--out", default=None, help=f"output folder (default {default_weights_dir()})")
    parser.add_argument("--names", nargs="+", choices=list(NETWORKS), default=list(NETWORKS),
                        help="networks to convert or check (default: all)")
    parser.add_argument("--force", action="store_true", help="convert even when the files already verify")
    parser.add_argument("--check", action="store_true", help="only verify the converted files")
    args = parser.parse_args(argv)
    out = args.out or default_weights_dir()
    if args.check:
        problems = {n: p for n, p in check_all(out, args.names).items() if p is not None}
        for name in args.names:
            print(f"{name:22s} {'ok' if name not in problems else 'MISSING OR WRONG: ' + problems[name]}")
        return 1 if problems else 0
    if not args.wheel:
        parser.error("--wheel is required to convert (or pass --check)")
    for name, status in convert(args.wheel, out, args.names, force=args.force).items():
        print(f"{name:22s} {status}: {out}/{name}.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
