#!/usr/bin/env python
"""Experiments that test the claims the method rests on (issues 8 and 9), one command each.

    python tools/experiment.py prom-gap --preset cpu          # writes outputs/experiments/prom-gap/cpu.json
    python tools/experiment.py all --preset cpu               # every experiment, in order
    python tools/experiment.py report                         # regenerate docs/results.md + docs/figures/

Names: prom-gap, convergence, lr, orthogonalization, downstream-only, raw-fk, prom-gap-images, gradients,
rotation-recovery, point-cloud. Presets: cpu (2-core CPU), full (GPU), tiny (seconds; for tests).

The image experiments (convergence, lr, orthogonalization, prom-gap-images, ...) train three seeds per condition;
their runs live in <out>/runs_<preset>/ (one folder per resolved config, shared between experiments) with the
frozen encoder's features cached once in <out>/feature_cache_<preset>/. Several invocations may run at once (two
on a 2-core CPU, each with --threads 1): a run another process is training is left to it, and a later invocation
(or --collect-only) gathers every finished run into the JSON.
"""
import argparse
import sys
from pathlib import Path

import torch

from hmr.experiments import registry
from hmr.utils.logging import setup_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help=f"one of {registry.names()}, 'all' or 'report'")
    parser.add_argument("--preset", default="cpu", choices=registry.PRESETS)
    parser.add_argument("--out", default="outputs/experiments", help="raw results root")
    parser.add_argument("--results", nargs="*", default=None,
                        help="report: result roots to read, later ones win (default: docs/results then --out)")
    parser.add_argument("--docs", default="docs", help="report: where results.md and figures/ go")
    parser.add_argument("--collect-only", action="store_true",
                        help="image experiments: write the JSON from the finished runs only (no training)")
    parser.add_argument("--kinds", nargs="+", default=None, choices=("body", "hand"),
                        help="image experiments: only these sets (default: all the experiment has)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.name == "report":
            from hmr.experiments.report import write_report
            roots = args.results if args.results is not None else [str(Path(args.docs) / "results"), args.out]
            path = write_report([Path(r) for r in roots], Path(args.docs))
            print(f"wrote {path}")
            return 0
        todo = registry.names() if args.name == "all" else [args.name]
        for name in todo:
            if name not in registry.names():
                raise ValueError(f"unknown experiment {name!r}; expected one of {registry.names()}, "
                                 "'all' or 'report'")
        for name in todo:
            path = registry.run_experiment(name, args.preset, Path(args.out), args.collect_only, args.kinds)
            print(f"wrote {path}")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
