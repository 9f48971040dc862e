"""hmr.demo: images, folders and videos → meshes, smplx-named parameters and overlays (``tools/demo.py``).

Public API: :class:`DemoModel` (checkpoint → batched full-frame predictions), :func:`check_demo_inputs` (what can
fail before a checkpoint loads) and :func:`run_demo` with :class:`DemoOptions`, :func:`build_detector` /
:func:`register_detector` (detector plug-ins; ``blazepose`` / ``hands`` give keypoints too), :class:`Detection`,
:class:`DemoFitter` (2D keypoint errors and keypoint-guided fitting), :func:`resolve_focal`,
:func:`synthetic_mask_iou` / :func:`mask_iou`, :func:`sample_photos` / :class:`PersonSegmenter` (real-photo checks).
"""
from hmr.demo.boxes import Detection, center_scale, parse_bbox
from hmr.demo.detectors import DetectorError, build_detector, register_detector
from hmr.demo.focal import exif_focal, resolve_focal
from hmr.demo.inputs import DemoInputError, discover, read_frames
from hmr.demo.mask_iou import mask_iou, synthetic_mask_iou
from hmr.demo.predictor import CropInput, DemoModel, PersonPrediction
from hmr.demo.fitting import DemoFitter
from hmr.demo.options import DemoError, DemoOptions, DemoReport
from hmr.demo.photos import PersonSegmenter, sample_photos, write_sample_photos
from hmr.demo.runner import check_demo_inputs, run_demo

__all__ = [
    "CropInput", "DemoError", "DemoFitter", "DemoInputError", "DemoModel", "DemoOptions", "DemoReport",
    "Detection", "DetectorError", "PersonPrediction", "PersonSegmenter", "build_detector", "center_scale",
    "check_demo_inputs", "discover", "exif_focal", "mask_iou", "parse_bbox", "read_frames", "register_detector",
    "resolve_focal", "run_demo", "sample_photos", "synthetic_mask_iou", "write_sample_photos",
]
