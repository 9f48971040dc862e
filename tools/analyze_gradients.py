"""Gradient diagnostics of rotation mappings (Jacobian spectra, closed forms, PRoM Fig. 2 experiment).

    python tools/analyze_gradients.py --out runs/gradients
writes gradients.json, gradient_ambiguity.png and procrustes_condition.png (about 10 s on a CPU).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hmr.rotations.analysis import gradient_report
from hmr.utils.io import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=2000, help="samples per experiment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.n < 10:
        parser.error("--n must be at least 10")
    torch.set_num_threads(args.threads)
    report = gradient_report(args.out, n=args.n, seed=args.seed)
    write_json(args.out / "gradients.json", report)
    print(json.dumps(report["closed_form_checks"], indent=2))
    for sigma, per in report["gradient_ambiguity"].items():
        flips = ", ".join(f"{m} {100 * s['frac_sign_flipped']:.1f}%" for m, s in per.items())
        print(f"sigma={sigma}: sign-flipped dL/dt11: {flips}")
    print(f"wrote {args.out / 'gradients.json'}")


if __name__ == "__main__":
    main()
