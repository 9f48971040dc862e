#!/usr/bin/env python
"""Run a trained checkpoint on an image, a folder of images or a video: meshes, parameters and overlays.

    python tools/demo.py --checkpoint CKPT --input photo.jpg [--out demo_out]
    python tools/demo.py --checkpoint CKPT --input frames/ --detections dets.json
    python tools/demo.py --checkpoint CKPT --input clip.mp4 --bbox 100,40,200,420
    python tools/demo.py --checkpoint HAND_CKPT --input hand.jpg --bbox 50,60,120,120 --hand left
    python tools/demo.py --checkpoint CKPT --input photo.jpg --fit          # BlazePose keypoints + fitting

Boxes: --bbox (repeatable), else --detections (COCO-style boxes or body/hand keypoints per image), else
--detector (auto: blazepose for body checkpoints, hands for hand checkpoints — MediaPipe's networks in
PyTorch, boxes + keypoints; where those are not converted, OpenCV HOG / faces extended to people; hog; face;
none; a local ultralytics model file; module:function plug-in). A frame without a box is reported; box-only
detectors then use the whole image (unless --skip-undetected), blazepose/hands write nothing for it (unless
--whole-image-fallback); boxes wholly outside the image are ignored. --fit fits each person with keypoints to
them (docs/demo.md); summary.json gives every person's keypoints, the 2D keypoint error of the regressor's and the
fitted mesh, and the fitting time. Focal length: --focal, else EXIF, else
sqrt(w^2 + h^2); a value implausible for the image (field of view outside 1-170 degrees) skips the frame.
Transparent pixels are composited on grey. Images smaller than 16 px on a side are skipped.
Writes <out>/<name>/overlay.png (drawn at most 2048 px on the longer side) and personNN.{obj,ply,npz} per image,
overlay.mp4 and params.npz per video, per video track tracks/track_NN.{glb,bvh,npz} (smoothed; track ids in
summary.json), and <out>/summary.json. Nothing is downloaded.
Exit status: 0 done, 1 nothing could be processed or an output could not be written, 2 bad options/inputs.
"""
import os

# Idle OpenMP threads sleep instead of spinning: on a shared CPU, torch's spinning threads wait for each other
# whenever another process holds a core (measured on the shared 2-core machine: 2 threads 0.4-2 frames/s, PASSIVE
# 15-25 frames/s, as fast as 1 thread). Set before torch loads; an OMP_WAIT_POLICY you set yourself wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from hmr.demo import DemoModel, DemoOptions, parse_bbox, run_demo
from hmr.demo.detection_file import DetectionFileError
from hmr.demo.detectors import DetectorError
from hmr.demo.inputs import DemoInputError
from hmr.demo.runner import DemoError, check_demo_inputs
from hmr.engine.checkpoint import CheckpointError
from hmr.utils.file_errors import describe_os_error
from hmr.utils.logging import setup_logging


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="trained checkpoint (.pt)")
    parser.add_argument("--input", required=True, help="an image, a folder of images, or a video file")
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--bbox", action="append", default=[], metavar="X,Y,W,H",
                        help="tight person/hand box in pixels (repeat for several people)")
    parser.add_argument("--detections", help="detections JSON (or a folder of OpenPose JSON files)")
    parser.add_argument("--detector", default="auto",
                        help="auto | blazepose | hands | hog | face | none | local model file | module:function "
                             "(default: auto = blazepose / hands by the checkpoint's kind)")
    parser.add_argument("--fit", action="store_true",
                        help="fit each person to its detected keypoints (starts from the regressor's prediction)")
    parser.add_argument("--fit-set", action="append", default=[], metavar="FIELD=VALUE",
                        help="hmr.fitting.FitConfig field over the demo's settings (repeatable), e.g. iterations=120")
    parser.add_argument("--min-keypoint-confidence", type=float, default=0.3,
                        help="keypoints below this confidence are ignored by the fit and the 2D error (default 0.3)")
    parser.add_argument("--no-track", action="store_true",
                        help="videos: run the person/hand detector on every frame instead of following last "
                             "frame's keypoints")
    parser.add_argument("--whole-image-fallback", action="store_true",
                        help="use the whole image when blazepose/hands find nobody (default: write nothing)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--focal", type=float, help="focal length in pixels (default: EXIF, else sqrt(w²+h²))")
    parser.add_argument("--hand", choices=["left", "right"], help="side of hands without a side in the boxes")
    parser.add_argument("--batch-size", type=int, default=8, help="crops per forward pass (default: 8)")
    parser.add_argument("--max-people", type=int, help="keep the N highest-scoring boxes per frame")
    parser.add_argument("--bbox-expand", type=float, help="crop side / tight box side (default: body 1.2, hand 1.5)")
    parser.add_argument("--no-side-view", action="store_true", help="overlay without the side view")
    parser.add_argument("--no-meshes", action="store_true", help="skip .obj/.ply files")
    parser.add_argument("--video-meshes", action="store_true", help="also write .obj/.ply for every video frame")
    parser.add_argument("--skip-undetected", action="store_true",
                        help="skip frames without a box instead of using the whole image")
    parser.add_argument("--frame-stride", type=int, default=1, help="use every N-th video frame")
    parser.add_argument("--max-frames", type=int, help="at most N frames per video")
    parser.add_argument("--smooth", default="savgol", choices=["savgol", "one_euro", "none"],
                        help="videos: smoothing of each track before export (default: savgol, zero lag)")
    parser.add_argument("--smooth-window", type=int, default=9, help="savgol window in frames (default: 9)")
    parser.add_argument("--export", default="glb,bvh,npz",
                        help="videos: per-track files, comma-separated from glb,bvh,npz,fbx ('' for none; fbx "
                             "uses Blender's exporter: bash scripts/setup_blender.sh)")
    parser.add_argument("--body-model", help="refuse a checkpoint trained for another body model")
    parser.add_argument("--representation", help="refuse a checkpoint trained with another representation")
    parser.add_argument("--refit", action="store_true",
                        help="re-fit betas + translation so the exported (projected) mesh reproduces the training-"
                             "time skeleton (PRoM's train/inference gap; docs/prom_gap.md)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    return parser.parse_args(argv)


def shorten(items, limit: int) -> str:
    """``a, b, c`` with at most ``limit`` items, then ``(+N more)``."""
    items = list(items)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def print_written(paths, out: Path, limit: int = 20) -> None:
    """One line per output folder: the files written there."""
    groups = defaultdict(list)
    for path in paths:
        groups[path.parent].append(path.name)
    print(f"wrote {len(paths)} files under {out}:")
    for i, (folder, names) in enumerate(groups.items()):
        if i == limit:
            print(f"  ... and {len(groups) - limit} more folders")
            break
        print(f"  {folder}/: {shorten(names, 8)}")


def parse_fit_settings(pairs) -> dict:
    """``["iterations=120", "w_anchor_pose=0.02"]`` -> {field: number} (fields checked by DemoOptions.validate)."""
    from hmr.fitting import FitConfig
    integers = {name for name, f in FitConfig.__dataclass_fields__.items() if isinstance(f.default, int)}
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None:
            raise ValueError(f"--fit-set expects FIELD=NUMBER, got {pair!r}")
        settings[key.strip()] = int(number) if key.strip() in integers and number.is_integer() else number
    return settings


def print_keypoint_errors(frames, limit: int = 10) -> None:
    """One line per person with keypoints: 2D keypoint error of the regressor's (and the fitted) mesh."""
    lines = []
    for frame in frames:
        for person in frame.get("people", []):
            err = person.get("keypoint_error")
            if not err or err.get("regressor_px") is None:
                continue
            text = (f"  {frame['name']} person {person['person']}: 2D keypoint error ({err['joint_set']}, "
                    f"{err['keypoints_used']} keypoints) regressor {err['regressor_px']:.1f} px "
                    f"({100 * err['regressor_box']:.1f}% of the box)")
            fit = person.get("fit")
            if fit and err.get("fitted_px") is not None:
                text += (f" -> fitted {err['fitted_px']:.1f} px ({100 * err['fitted_box']:.1f}%)"
                         f"{' [fell back: ' + fit['status'] + ']' if fit['fell_back'] else ''}"
                         f", fit {fit.get('seconds', 0.0):.2f} s")
            lines.append(text)
    for line in lines[:limit]:
        print(line)
    if len(lines) > limit:
        print(f"  ... {len(lines) - limit} more people in summary.json")


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    if args.skip_undetected and args.whole_image_fallback:
        print("error: --skip-undetected and --whole-image-fallback contradict each other", file=sys.stderr)
        return 2
    if args.threads is not None:
        import torch
        torch.set_num_threads(max(1, args.threads))
    try:
        options = DemoOptions(
            out=Path(args.out), bboxes=[parse_bbox(b) for b in args.bbox],
            detections=Path(args.detections) if args.detections else None, detector=args.detector,
            focal=args.focal, hand=args.hand, batch_size=args.batch_size, max_people=args.max_people,
            side_view=not args.no_side_view, bbox_expand=args.bbox_expand,
            fallback_whole_image=False if args.skip_undetected else (True if args.whole_image_fallback else None),
            meshes=not args.no_meshes, video_meshes=args.video_meshes, frame_stride=args.frame_stride,
            max_frames=args.max_frames, progress=not args.quiet, fit=args.fit,
            min_keypoint_confidence=args.min_keypoint_confidence, track=not args.no_track,
            fit_settings=parse_fit_settings(args.fit_set), smoothing=args.smooth,
            smooth_window=args.smooth_window, exports=tuple(e for e in args.export.split(",") if e))
        check_demo_inputs(Path(args.input), options)  # before the (slow) checkpoint load
        model = DemoModel(args.checkpoint, args.device, args.body_model, args.representation, refit=args.refit)
        report = run_demo(model, Path(args.input), options)
    except (CheckpointError, DemoError, DemoInputError, DetectionFileError, DetectorError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc, Path(args.out))}", file=sys.stderr)
        return 1
    print(f"checkpoint: {model.checkpoint} | body model {model.name} | representation "
          f"{model.representation_name} (inference mapping: {model.switches.inference}"
          f"{', betas + translation refitted to the training-time skeleton' if model.refit else ''})")
    people = sum(len(f.get("people", [])) for f in report.frames)
    print(f"frames: {len(report.frames)} processed, {len(report.skipped)} skipped (unreadable or refused), "
          f"{len(report.no_detection)} without detection | people: {people}")
    for item in report.skipped[:10]:
        frame = f" frame {item['frame']}" if "frame" in item else ""
        print(f"  skipped {item['input']}{frame}: {item['error']}")
    notes = [f"{frame['name']}: {frame['note']}" for frame in report.frames if "note" in frame]
    notes += [f"{frame['name']}: {w}" for frame in report.frames for w in frame.get("warnings", [])]
    notes += report.fit_fallbacks
    for note in notes[:10]:
        print(f"  {note}")
    print_keypoint_errors(report.frames)
    if len(notes) > 10 or len(report.skipped) > 10:
        print(f"  ... see {report.summary_path} for every frame")
    print_written(report.written, Path(args.out))
    if not report.frames:
        plural = "input" if report.inputs == 1 else "inputs"
        print(f"error: nothing was processed: every frame of the {report.inputs} {plural} was unreadable or "
              f"refused (reasons above and in {report.summary_path})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
