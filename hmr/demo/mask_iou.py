"""Silhouette check for the demo on synthetic body sets: IoU between the rendered predicted mesh and the
rendered ground-truth mesh, both through the full-frame camera.

The ground truth is rebuilt from the SPIN-style npz the synthetic generator writes (``rotmat`` (N, 24, 3, 3)
camera-frame rotations, ``shape`` betas, ``transl``, ``K``, ``img_size``, ``imgname``) with the open SMPL model
that generated it; the prediction uses the npz's box (``center``, ``scale``) and focal length (``focal_l``),
so the number measures the regressor and camera, not a detector. With a ``fitter`` (the demo's ``--fit``:
:class:`~hmr.demo.fitting.DemoFitter`) and a keypoint ``detector`` (BlazePose on the rendered image, never the
ground truth), each prediction is also fitted to the detected keypoints of the person nearest the set's box, as
``tools/demo.py --fit`` does, and the fitted mesh is scored on the same samples (``fitted``; a sample where no
person is found or the fit falls back keeps the regressor's mesh and is counted). Where the person detector finds
nobody, the landmark network can run in the set's box instead (``box_keypoints``: the demo's path for ``--bbox``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

import hmr.body
from hmr.data.image import ImageReadError, read_image
from hmr.demo.boxes import Detection
from hmr.demo.fitting import DemoFitter
from hmr.demo.predictor import CropInput, DemoModel
from hmr.vis.render import Renderer

log = logging.getLogger(__name__)
GT_KEYS = ("imgname", "center", "scale", "focal_l", "K", "img_size", "transl", "rotmat", "shape")


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one shape (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"masks must have the same shape, got {a.shape} and {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _nearest(detections: Sequence[Detection], center: np.ndarray) -> Optional[Detection]:
    """The detection whose box centre is nearest ``center`` (None when there is none)."""
    if not detections:
        return None
    return min(detections, key=lambda d: float(np.hypot(d.bbox[0] + d.bbox[2] / 2 - center[0],
                                                        d.bbox[1] + d.bbox[3] / 2 - center[1])))


def _summary(ious: Sequence[float]) -> Dict[str, float]:
    arr = np.asarray(ious)
    return {"mean_iou": float(arr.mean()), "median_iou": float(np.median(arr))}


def synthetic_mask_iou(model: DemoModel, npz_path: Union[str, Path], max_samples: Optional[int] = None,
                       gt_body_model: str = "open-smpl", batch_size: int = 8, progress: bool = False,
                       fitter: Optional[DemoFitter] = None,
                       detector: Optional[Callable[[np.ndarray], List[Detection]]] = None,
                       box_keypoints: Optional[Callable[[np.ndarray, List[Detection]], List[Detection]]] = None
                       ) -> Dict[str, object]:
    """Per-sample and mean/median silhouette IoU of ``model`` on a synthetic body npz (images relative to it);
    with ``fitter`` and ``detector`` also of the keypoint-fitted meshes (``fitted``). ``box_keypoints``
    (:class:`~hmr.demo.keypoint_detectors.BoxKeypoints`): where the detector finds nobody, the landmarks in the
    set's box instead, as the demo does for a box it is given."""
    if (fitter is None) != (detector is None):
        raise ValueError("fitting needs both a fitter and a keypoint detector")
    npz_path = Path(npz_path)
    if model.kind != "body":
        raise ValueError(f"mask IoU on a synthetic body set needs a body checkpoint, got {model.name!r}")
    with np.load(npz_path, allow_pickle=False) as data:
        missing = [k for k in GT_KEYS if k not in data.files]
        if missing:
            raise ValueError(f"{npz_path} lacks {missing}: expected a synthetic body set npz "
                             f"(tools/make_synthetic.py) with keys {GT_KEYS}")
        gt = {k: data[k] for k in GT_KEYS}
    n = len(gt["imgname"]) if max_samples is None else min(max_samples, len(gt["imgname"]))
    body = hmr.body.load(gt_body_model)
    ious, names, skipped = [], [], []
    fitted_ious, statuses, in_box = [], [], 0
    for start in tqdm(range(0, n, batch_size), desc="mask IoU", disable=not progress):
        rows, crops, images = [], [], []
        for i in range(start, min(n, start + batch_size)):
            try:
                image = read_image(npz_path.parent / str(gt["imgname"][i]))
            except ImageReadError as exc:
                skipped.append(str(exc))
                continue
            rows.append(i)
            images.append(image)
            crops.append(CropInput(image, gt["center"][i], float(gt["scale"][i]), float(gt["focal_l"][i])))
        if not rows:
            continue
        people = model.predict(crops, batch_size)
        with torch.no_grad():
            verts = body(full_pose=torch.as_tensor(gt["rotmat"][rows], dtype=torch.float32),
                         betas=torch.as_tensor(gt["shape"][rows], dtype=torch.float32)).vertices.numpy()
        verts = verts + gt["transl"][rows][:, None].astype(np.float32)
        for j, (i, person) in enumerate(zip(rows, people)):
            h, w = (int(v) for v in gt["img_size"][i])
            renderer = Renderer(w, h)
            gt_mask = renderer.render(verts[j], body.faces, gt["K"][i]).mask
            pred_mask = renderer.render(person.vertices, person.faces, person.K).mask
            ious.append(mask_iou(pred_mask, gt_mask))
            names.append(str(gt["imgname"][i]))
            if fitter is not None:
                found = _nearest(detector(images[j]), gt["center"][i])
                if found is None and box_keypoints is not None:  # the demo's path for a given box (--bbox)
                    side = 200.0 * float(gt["scale"][i])
                    box = Detection((gt["center"][i][0] - side / 2, gt["center"][i][1] - side / 2, side, side),
                                    source="set box")
                    found = box_keypoints(images[j], [box])[0]
                    found = found if found.keypoints is not None else None
                    in_box += found is not None
                if found is None:
                    statuses.append("no_person")
                    fitted_ious.append(ious[-1])
                    continue
                fit = fitter.process([found], [person], image_size=(h, w))[0][0]
                statuses.append(fit.status or "not_fitted")
                fitted_ious.append(mask_iou(renderer.render(fit.person.vertices, fit.person.faces,
                                                            fit.person.K).mask, gt_mask))
    if not ious:
        raise ValueError(f"no readable images for {npz_path} ({len(skipped)} unreadable)")
    result = {**_summary(ious), "count": len(ious),
              "per_sample": dict(zip(names, [round(v, 4) for v in ious])), "unreadable": skipped,
              "checkpoint": model.checkpoint, "body_model": model.name, "representation": model.representation_name,
              "protocol": f"silhouette IoU, full-frame camera, GT box/focal from {npz_path.name}, "
                          f"GT mesh {gt_body_model}"}
    if fitter is not None:
        result["fitted"] = {**_summary(fitted_ious), "per_sample": dict(zip(names, [round(v, 4) for v in fitted_ious])),
                            "status_counts": {k: statuses.count(k) for k in sorted(set(statuses))},
                            "keypoints_in_the_box": in_box,
                            "keypoints": "detected on the rendered image (never the ground truth)"}
    return result
