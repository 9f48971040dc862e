#!/usr/bin/env python
"""GPU check: CPU-vs-GPU parity (rotations, forward kinematics, one training step), then every GPU preset trained
for a few hundred steps on the synthetic sets with AMP, evaluated and run through the demo; images/s (end to end
and model only) and peak memory per preset.

    python tools/gpu_check.py                                  # CUDA: all presets in configs/body, configs/hand
    python tools/gpu_check.py --presets configs/body/prom.yaml --steps 300
    python tools/gpu_check.py --device cpu --tiny              # CPU, tiny: keeps the check alive in the tests

Needs the rendered synthetic sets (``--data-root``, default data/synthetic: body_quick and hand_quick, e.g. from
``python tools/make_synthetic.py --config configs/synthetic/quick.yaml``). The presets' official SMPL/MANO models
are replaced by the open ones. Writes <out>/gpu_check.json after every section; exit status 0 when every section
ran, 1 when one failed (the JSON says which and why).
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from hmr.engine.gpu_check import CheckSettings, preset_paths, run_gpu_check  # noqa: E402
from hmr.utils.io import write_json  # noqa: E402


def _demo_image(out: Path) -> Path:
    """A real photo of a person (skimage's astronaut, public domain) as the demo input."""
    import cv2
    import skimage.data
    path = out / "astronaut.png"
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), skimage.data.astronaut()[..., ::-1])
    return path


def _print_summary(report: dict) -> None:
    env = report["environment"]
    print(f"device: {env.get('gpu', env['device'])}, torch {env['torch']}")
    for name, section in report["parity"].items():
        shown = {k: v for k, v in section.items() if k in ("worst", "worst_mm", "loss_rel_diff", "grad_rel_diff",
                                                            "params_max_abs_diff")}
        print(f"parity {name}: {shown if section.get('ok') else section.get('error')}")
    for name, rep in report["presets"].items():
        if not rep.get("ok"):
            print(f"{name}: FAILED {rep.get('error')}")
            continue
        print(f"{name}: {rep['steps']} steps x {rep['batch_size']}, loss {rep['first_loss']:.4f} -> "
              f"{rep['final_loss']:.4f}, "
              f"{rep['images_per_s_end_to_end']} img/s end-to-end, {rep['images_per_s_model_only']} img/s model-only, "
              f"peak {rep.get('peak_memory_gib', '-')} GiB, eval {rep['eval']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", nargs="+", default=["body", "hand"],
                        help="preset files, or body / hand for all of configs/<kind>/")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=None, help="default: each preset's own")
    parser.add_argument("--workers", type=int, default=8, help="data-loader workers")
    parser.add_argument("--eval-samples", type=int, default=256)
    parser.add_argument("--data-root", default="data/synthetic")
    parser.add_argument("--out", default="outputs/gpu_check", help="run folders of the presets")
    parser.add_argument("--report", default=None, help="the JSON report (default: <out>/gpu_check.json)")
    parser.add_argument("--tiny", action="store_true", help="2 steps, batch 4, no workers (a CPU smoke run)")
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    settings = CheckSettings(presets=preset_paths(args.presets), data_root=Path(args.data_root), out_dir=out,
                             device=args.device, steps=args.steps, batch_size=args.batch_size,
                             num_workers=args.workers, eval_samples=args.eval_samples)
    if args.tiny:
        settings.steps, settings.batch_size, settings.num_workers = 2, 4, 0
        settings.eval_samples, settings.throughput_steps = 8, 2
    if not args.no_demo:
        settings.demo_image = _demo_image(out)
    report_path = Path(args.report) if args.report else out / "gpu_check.json"
    try:
        report = run_gpu_check(settings, on_section=lambda name, rep: write_json(report_path, rep))
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json(report_path, report)
    _print_summary(report)
    print(f"wrote {report_path}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
