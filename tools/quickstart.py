#!/usr/bin/env python
"""The main job on the embedded default: open body/hand models + rendered synthetic data, on the CPU.

    python tools/quickstart.py [--out outputs/quickstart] [--steps-body N] [--steps-hand N] [--skip-data]
                               [--set train.batch_size=16 ...]

1. renders the quick synthetic sets (20k clean-scene images each: data/synthetic/body_quick, hand_quick; reused
   when already complete),
2. trains the CPU presets (configs/body_cpu.yaml, configs/hand_cpu.yaml; PRoM),
3. evaluates each on its synthetic test split, next to the mean-pose baseline,
4. runs the demo on a few synthetic test images, and the body model on three real photos that ship in pip packages
   (scikit-image's astronaut and camera, matplotlib's grace_hopper) with BlazePose keypoints and fitting, and
   scores the body demo's silhouettes on 200 synthetic test images (regressor alone and with --fit),
5. prints the metrics and lists every file it wrote (the photo overlays first).
Each step is one of the project's own command-line tools; the exact commands are printed as they run.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cmd, log):
    """Run one tool, echo the command, stream its output to a log file, fail loudly."""
    printable = " ".join(str(c) for c in cmd)
    print(f"\n$ {printable}", flush=True)
    start = time.time()
    with open(log, "w") as handle:
        proc = subprocess.run([sys.executable, *map(str, cmd)], cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        print(Path(log).read_text()[-4000:])
        raise SystemExit(f"quickstart: step failed ({printable}); full log: {log}")
    lines = [ln for ln in Path(log).read_text().splitlines() if ln.strip() and "\r" not in ln]
    for line in lines[-8:]:
        if " INFO " not in line:
            print(f"  {line}")
    print(f"  ({time.time() - start:.0f} s)", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/quickstart")
    parser.add_argument("--data-root", default="data/synthetic")
    parser.add_argument("--steps-body", type=int, default=None, help="override configs/body_cpu.yaml train.steps")
    parser.add_argument("--steps-hand", type=int, default=None, help="override configs/hand_cpu.yaml train.steps")
    parser.add_argument("--skip-data", action="store_true", help="use the existing synthetic sets as they are")
    parser.add_argument("--demo-images", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for both training runs (repeatable), e.g. train.batch_size=16")
    args = parser.parse_args(argv)
    out = (REPO / args.out).resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    if not args.skip_data:
        run(["tools/make_synthetic.py", "--config", "configs/synthetic/quick.yaml", "--root", args.data_root,
             "--no-progress"], logs / "make_synthetic.log")

    results = {}
    for kind, config, steps in (("body", "configs/body_cpu.yaml", args.steps_body),
                                ("hand", "configs/hand_cpu.yaml", args.steps_hand)):
        run_dir = out / kind
        overrides = [f"data.root={args.data_root}", "train.final_eval=false"]
        if steps is not None:
            overrides.append(f"train.steps={steps}")
        overrides += args.set
        run(["tools/train.py", "--config", config, "--out", run_dir, "--overwrite", *overrides],
            logs / f"train_{kind}.log")
        ckpt = run_dir / "checkpoints" / "last.pt"
        run(["tools/eval.py", "--checkpoint", ckpt, "--out", run_dir / "eval.json", "--render", "2",
             f"data.root={args.data_root}"], logs / f"eval_{kind}.log")
        run(["tools/eval.py", "--config", config, "--baseline", "mean-pose", "--out",
             run_dir / "baseline_mean_pose.json", f"data.root={args.data_root}"], logs / f"baseline_{kind}.log")
        results[kind] = {
            "model": json.loads((run_dir / "eval.json").read_text()),
            "baseline": json.loads((run_dir / "baseline_mean_pose.json").read_text()),
        }
        demo_input, boxes = _demo_images(REPO / args.data_root, kind, out / "demo_inputs" / kind, args.demo_images)
        run(["tools/demo.py", "--checkpoint", ckpt, "--input", demo_input, "--detections", boxes,
             "--out", out / "demo" / kind], logs / f"demo_{kind}.log")
        if kind == "body":
            photos = _write_photos(out / "demo_inputs" / "photos")
            run(["tools/demo.py", "--checkpoint", ckpt, "--input", photos, "--detector", "auto", "--fit",
                 "--out", out / "demo" / "photos"], logs / "demo_photos.log")
            run(["tools/demo_iou.py", "--checkpoint", ckpt, "--npz", Path(args.data_root) / "body_quick" / "test.npz",
                 "--max-samples", "200", "--fit", "--out", run_dir / "demo_mask_iou.json"], logs / "demo_iou.log")

    print("\n=== results (synthetic test splits; not comparable with published benchmarks) ===")
    for kind, res in results.items():
        model, base = res["model"]["metrics"], res["baseline"]["metrics"]
        protocol = res["model"]["protocol"]
        print(f"{kind}: protocol {protocol['name']} ({protocol['joint_set']}, {protocol['alignment']}), "
              f"{res['model']['count']} test images")
        for key in model:
            if key in base:
                print(f"  {key:<22} model {model[key]:9.3f}   mean-pose baseline {base[key]:9.3f}")
        for key in ("inference_gap_pve_mm", "train_bone_error_mm"):
            if key in model:
                print(f"  {key:<22} model {model[key]:9.3f}   (PRoM's train/inference gap, docs/prom_gap.md)")
        key = "pa_mpjpe_mm"
        if key in model and key in base and base[key] > 0:
            print(f"  PA-MPJPE reduction vs the mean-pose baseline: {100 * (1 - model[key] / base[key]):.1f}%")
    iou_file = out / "body" / "demo_mask_iou.json"
    if iou_file.exists():
        iou = json.loads(iou_file.read_text())
        print(f"demo (body): rendered-mask IoU vs ground truth on {iou['count']} synthetic test images: "
              f"mean {iou['mean_iou']:.3f}, median {iou['median_iou']:.3f}")
        if "fitted" in iou:
            fitted = iou["fitted"]
            print(f"  with the demo's --fit (BlazePose keypoints on each image): mean {fitted['mean_iou']:.3f}, "
                  f"median {fitted['median_iou']:.3f} (landmarks in the set's box where the person detector found "
                  f"nobody: {fitted['keypoints_in_the_box']}; no keypoints at all, regressor's mesh kept: "
                  f"{fitted['status_counts'].get('no_person', 0)})")
    _print_photo_fits(out / "demo" / "photos" / "summary.json")
    print(f"\nfinished in {(time.time() - t0) / 60:.1f} min. Files written under {out}:")
    files = sorted(p for p in out.rglob("*") if p.is_file() and "tensorboard" not in p.parts)
    photo_overlays = sorted((out / "demo" / "photos").glob("*/overlay.png"))
    if photo_overlays:
        print("  real photos, fitted meshes over the photo | side view:")
    for path in photo_overlays + [p for p in files if p not in photo_overlays]:
        print(f"  {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    print(f"  (+ TensorBoard logs in {out}/*/tensorboard; synthetic data in {args.data_root})")
    return 0


def _write_photos(dest: Path) -> Path:
    """The real photos the demo runs on (from scikit-image and matplotlib; nothing is downloaded)."""
    from hmr.demo.photos import write_sample_photos
    write_sample_photos(dest)
    return dest


def _print_photo_fits(summary_path: Path) -> None:
    """One line per real photo: person found, 2D keypoint error before/after fitting."""
    if not summary_path.exists():
        return
    print("demo (body) on real photos, BlazePose keypoints + fitting (2D keypoint error, pixels):")
    for frame in json.loads(summary_path.read_text())["frames"]:
        people = frame.get("people", [])
        if not people:
            print(f"  {frame['name']}: {frame.get('note', 'no person')}")
            continue
        err, fit = people[0].get("keypoint_error") or {}, people[0].get("fit") or {}
        if err.get("regressor_px") is None:
            print(f"  {frame['name']}: {len(people)} person(s), no keypoints to score")
            continue
        fitted = "n/a" if err.get("fitted_px") is None else f"{err['fitted_px']:.1f} px"
        print(f"  {frame['name']}: {len(people)} person(s); regressor {err['regressor_px']:.1f} px -> fitted "
              f"{fitted} ({fit.get('status', 'not fitted')}, {fit.get('seconds', 0.0):.2f} s)")


def _demo_images(data_root: Path, kind: str, dest: Path, count: int):
    """Copy the first ``count`` test images into a folder for the demo, with their boxes as a detections file
    (the "user gives boxes" path: the built-in people detector is meant for photographs, not these renders)."""
    import shutil

    import numpy as np
    dest.mkdir(parents=True, exist_ok=True)
    boxes = {}
    if kind == "body":
        ann = np.load(data_root / "body_quick" / "test.npz")
        for i in range(count):
            src = data_root / "body_quick" / str(ann["imgname"][i])
            side = 200.0 * float(ann["scale"][i]) / 1.2  # the demo re-expands boxes by 1.2 (bodies)
            cx, cy = (float(v) for v in ann["center"][i])
            boxes[src.name] = [[cx - side / 2, cy - side / 2, side, side]]
            shutil.copy(src, dest / src.name)
    else:
        import json
        xyz = json.loads((data_root / "hand_quick" / "evaluation_xyz.json").read_text())
        K = json.loads((data_root / "hand_quick" / "evaluation_K.json").read_text())
        for i, src in enumerate(sorted((data_root / "hand_quick" / "evaluation" / "rgb").glob("*.jpg"))[:count]):
            uvw = np.asarray(xyz[i]) @ np.asarray(K[i]).T
            uv = uvw[:, :2] / uvw[:, 2:]
            (x0, y0), (x1, y1) = uv.min(0), uv.max(0)
            boxes[src.name] = [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)]]
            shutil.copy(src, dest / src.name)
    boxes_path = dest.parent / f"{kind}_boxes.json"
    boxes_path.write_text(__import__("json").dumps(boxes, indent=1))
    return dest, boxes_path


if __name__ == "__main__":
    sys.exit(main())
