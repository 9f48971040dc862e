"""A trained regressor wrapped for the demo: crops exactly like training, batched inference through the
representation's inference mapping (SVD for PRoM), meshes in the full-frame camera.

Hands of the other side than the model's (a left hand for a right-hand MANO model) are mirrored: the image is
flipped about the principal point's vertical line (x → w − x, the same map training's flip uses), a hand of the
model's side is predicted, and the result is mirrored back — vertices and translation x → −x in the camera
frame, rotations R → M R M with M = diag(−1, 1, 1) (exactly the left model's parameters: left(M R M) = M·right(R)),
2D keypoints u → w − u and the face winding reversed.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from hmr.data.crop import compose_affine, crop_matrix, inplane_transform, normalize_image, warp_image
from hmr.engine.builders import keypoint_settings
from hmr.engine.checkpoint import CheckpointError, load_checkpoint
from hmr.engine.eval_job import load_trained
from hmr.engine.forward import OrthoSwitches, decode_outputs
from hmr.engine.refit import refit_prediction
from hmr.geometry.camera import bbox_info
from hmr.rotations import matrix_to_axis_angle, special_procrustes

log = logging.getLogger(__name__)
MIRROR = np.diag([-1.0, 1.0, 1.0])


@dataclass
class CropInput:
    """One person to predict: the full image, its square crop box (``center``, ``scale`` = side / 200) and
    focal length (pixels); ``mirror`` flips the image first (other-side hands). ``align_vector`` (x, y pixels,
    y down): the person's hip centre -> shoulder centre (hand: wrist -> middle-finger MCP) from a keypoint
    detector; a landmark-feature model then rotates its crop by it instead of running its alignment pass."""

    image: np.ndarray
    center: np.ndarray
    scale: float
    focal: float
    mirror: bool = False
    align_vector: Optional[np.ndarray] = None


@dataclass
class PersonPrediction:
    """One prediction in the original (unmirrored) full-frame camera. ``rotmats`` (J, 3, 3) are what forward
    kinematics used at inference (joint 0 = global orientation); ``axis_angle`` (J, 3) is their nearest
    rotation's axis-angle; ``vertices`` (V, 3) = model output + ``transl``; ``keypoints_2d`` (K, 2) pixels."""

    vertices: np.ndarray
    faces: np.ndarray
    rotmats: np.ndarray
    axis_angle: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    K: np.ndarray
    keypoints_2d: np.ndarray
    body_model: str
    mirrored: bool


def other_side_name(name: str) -> str:
    """``open-mano-right`` ↔ ``open-mano-left`` (and ``mano-right`` ↔ ``mano-left``); other names + ``-mirrored``."""
    for a, b in (("right", "left"), ("left", "right")):
        if name.endswith(a):
            return name[: -len(a)] + b
    return name + "-mirrored"


class DemoModel:
    """Load a checkpoint for inference. ``body_model`` / ``representation``, when given, must match what the
    checkpoint was trained with (:class:`~hmr.engine.checkpoint.CheckpointError` otherwise). ``refit``: re-fit
    betas and translation so the exported mesh reproduces the training-time skeleton (:mod:`hmr.engine.refit`;
    for representations whose training matrices are not rotations, e.g. PRoM)."""

    def __init__(self, checkpoint: Union[str, Path], device: str = "cpu", body_model: Optional[str] = None,
                 representation: Optional[str] = None, refit: bool = False) -> None:
        expected = None
        if body_model is not None or representation is not None:
            stored = load_checkpoint(checkpoint)["config"]
            expected = {"body_model": {"name": body_model or stored["body_model"]["name"]},
                        "representation": {"name": representation or stored["representation"]["name"]}}
        cfg, model, body, rep = load_trained(str(checkpoint), expected, device)
        if model is None:  # pragma: no cover - load_trained always builds a model from a checkpoint
            raise CheckpointError(f"{checkpoint}: no model in checkpoint")
        self.config, self.model, self.body_model, self.representation = cfg, model, body, rep
        self.device = torch.device(device)
        self.kind: str = body.kind
        self.name: str = cfg["body_model"]["name"]
        self.side: Optional[str] = ("left" if self.name.endswith("left") else "right") if self.kind == "hand" else None
        self.crop_hw = tuple(int(v) for v in cfg["data"]["crop_size"])
        self.switches = OrthoSwitches.from_config(cfg["representation"])
        self.keypoint_set = keypoint_settings(cfg, body)[0]
        self.faces = body.faces.cpu().numpy().astype(np.int64)
        self.checkpoint = str(checkpoint)
        self.refit = refit

    @property
    def representation_name(self) -> str:
        return str(self.config["representation"]["name"])

    def make_batch(self, items: Sequence[CropInput]) -> dict:
        """The batch dict ``hmr.engine.forward.predict`` needs, cropped like the training data."""
        imgs, centers, scales, focals, sizes = [], [], [], [], []
        for item in items:
            h, w = item.image.shape[:2]
            center = np.asarray(item.center, dtype=np.float64)
            full2d, _ = inplane_transform(0.0, item.mirror, (w / 2.0, h / 2.0))
            if item.mirror:
                center = np.array([w - center[0], center[1]])
            affine = compose_affine(crop_matrix(center, item.scale, self.crop_hw), full2d)
            imgs.append(normalize_image(warp_image(item.image, affine, self.crop_hw)))
            centers.append(center)
            scales.append(item.scale)
            focals.append(item.focal)
            sizes.append((h, w))
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)  # noqa: E731
        batch = {"img": torch.stack(imgs).to(self.device), "center": t(centers), "scale": t(scales),
                 "focal": t(focals), "img_size": t(sizes)}
        batch["bbox_info"] = bbox_info(batch["center"], batch["scale"], batch["focal"], batch["img_size"])
        return batch

    @torch.no_grad()
    def predict(self, items: Sequence[CropInput], batch_size: int = 16) -> List[PersonPrediction]:
        """Predictions for ``items`` in order, run ``batch_size`` at a time."""
        if batch_size < 1:
            raise ValueError(f"batch size must be ≥ 1, got {batch_size}")
        results: List[PersonPrediction] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = self.make_batch(chunk)
            with self._alignment(chunk):
                raw = self.model(batch["img"], batch["bbox_info"])
            out = decode_outputs(raw, self.representation, self.body_model, batch, self.switches,
                                 self.keypoint_set, stage="inference")
            if self.refit:
                out = refit_prediction(self.body_model, self.representation, self.switches.forward_kinematics,
                                       raw, out, self.keypoint_set)
            rot = out["rotmats"].double()
            aa = matrix_to_axis_angle(special_procrustes(rot)).cpu().numpy()
            arrays = {k: out[k].double().cpu().numpy() for k in ("vertices_cam", "transl", "K", "keypoints_2d")}
            rot, betas = rot.cpu().numpy(), out["betas"].double().cpu().numpy()
            for i, item in enumerate(chunk):
                results.append(self._person(item, rot[i], aa[i], betas[i],
                                            {k: v[i] for k, v in arrays.items()}))
        return results

    def _alignment(self, items: Sequence[CropInput]):
        """A context in which the model's landmark features align crops by the items' ``align_vector`` (when
        every item has one and the backbone is an aligning landmark network), else a no-op."""
        features = getattr(getattr(self.model, "backbone", None), "model", None)
        if not getattr(features, "align", False) or not hasattr(features, "aligned_by") or any(
                item.align_vector is None for item in items):
            return contextlib.nullcontext()
        # the crop is an axis-aligned scaling of the (mirrored) image: directions carry over, x flips with a mirror
        vectors = np.array([np.asarray(item.align_vector, np.float64) for item in items])
        vectors[[item.mirror for item in items], 0] *= -1.0
        return features.aligned_by(torch.as_tensor(vectors, dtype=torch.float32, device=self.device))

    def _person(self, item: CropInput, rot: np.ndarray, aa: np.ndarray, betas: np.ndarray,
                arrays: dict) -> PersonPrediction:
        verts, transl, kp2d = arrays["vertices_cam"], arrays["transl"], arrays["keypoints_2d"]
        faces, name = self.faces, self.name
        if item.mirror:
            w = item.image.shape[1]
            verts, transl = verts @ MIRROR, transl @ MIRROR
            rot = MIRROR @ rot @ MIRROR
            aa = aa * np.array([1.0, -1.0, -1.0])   # axis-angle of M R M: the axis (x, y, z) → (x, −y, −z)
            kp2d = np.stack([w - kp2d[:, 0], kp2d[:, 1]], axis=1)
            faces, name = faces[:, ::-1].copy(), other_side_name(name)
        return PersonPrediction(vertices=verts.astype(np.float32), faces=faces, rotmats=rot.astype(np.float32),
                                axis_angle=aa.astype(np.float32), betas=betas.astype(np.float32),
                                transl=transl.astype(np.float32), K=arrays["K"].astype(np.float32),
                                keypoints_2d=kp2d.astype(np.float32), body_model=name, mirrored=item.mirror)
