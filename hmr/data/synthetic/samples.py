"""Render labelled synthetic samples: one body (SMPL-structured model) or one hand (MANO-structured model) per
image, with the annotations real datasets carry. Storage formats live in :mod:`hmr.data.synthetic.writers`.

Body annotations follow SPIN/CLIFF npz keys; hand annotations follow FreiHAND's files. Every sample is a pure
function of the random generator handed in (and the model), so shards are reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from hmr.data.synthetic import appearance, scene
from hmr.data.synthetic.pose_prior import BODY_ARCHETYPE_WEIGHTS, HAND_ARCHETYPE_WEIGHTS, BodyPosePrior, HandPosePrior
from hmr.vis.render import Mesh, Renderer

BBOX_EXPAND = 1.2  # SPIN/CLIFF: scale = 1.2 * tight box side / 200
MIRROR_X = np.diag([-1.0, 1.0, 1.0])


@dataclass
class SceneOptions:
    """How samples are drawn (one instance per dataset kind; see ``configs/synthetic/*.yaml``)."""

    image_sizes: Sequence[Sequence[int]] = ((256, 256),)  # [height, width] pairs
    fov_deg: Tuple[float, float] = (40.0, 80.0)
    fill: Tuple[float, float] = (0.3, 0.9)
    full_sphere_share: float = 0.15  # bodies: uniformly random orientation instead of upright views
    truncation_share: float = 0.15
    occlusion_share: float = 0.25
    background_dir: Optional[str] = None
    blur_share: float = 0.2
    shape_std: float = 1.0
    archetype_weights: Optional[Sequence[float]] = None
    left_share: float = 0.5  # hands only
    backend: str = "auto"

    def __post_init__(self) -> None:
        for name in ("full_sphere_share", "truncation_share", "occlusion_share", "blur_share", "left_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a share in [0, 1], got {value}")
        for name in ("fov_deg", "fill"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range [lo, hi] with 0 < lo <= hi, got {[lo, hi]}")
        for hw in self.image_sizes:
            if len(hw) != 2 or min(hw) < 16:
                raise ValueError(f"image_sizes must be [height, width] pairs of at least 16 pixels, got {hw}")


@dataclass
class Sample:
    """One rendered sample: RGB image, the subject's visible silhouette, annotations and generation metadata."""

    image: np.ndarray
    person_mask: np.ndarray
    annotation: Dict[str, Any]
    meta: Dict[str, Any] = field(default_factory=dict)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) pixels."""
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:3]


def with_visibility(uv: np.ndarray, z: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 3) = [u, v, 1 if in front of the camera and inside the image else 0]."""
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= height - 1)
    return np.concatenate([uv, inside[:, None].astype(uv.dtype)], axis=1)


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) axis-angle (cv2.Rodrigues per matrix; float64)."""
    flat = R.reshape(-1, 3, 3).astype(np.float64)
    out = np.stack([cv2.Rodrigues(m)[0][:, 0] for m in flat]) if len(flat) else np.zeros((0, 3))
    return out.reshape(R.shape[:-2] + (3,))


class _SamplerBase:
    def __init__(self, options: SceneOptions) -> None:
        self.options = options
        self._renderers: Dict[Tuple[int, int], Renderer] = {}

    def renderer(self, height: int, width: int) -> Renderer:
        key = (height, width)
        if key not in self._renderers:
            self._renderers[key] = Renderer(width, height, self.options.backend)
        return self._renderers[key]

    def _camera(self, rng: np.random.Generator) -> Tuple[int, int, float, np.ndarray]:
        h, w = scene.choose_size(rng, self.options.image_sizes)
        fov = float(rng.uniform(*self.options.fov_deg))
        return h, w, fov, scene.intrinsics_from_fov(w, h, fov)

    def _compose(self, rng: np.random.Generator, subject: Mesh, K: np.ndarray, h: int, w: int,
                 ) -> Tuple[np.ndarray, np.ndarray, int]:
        """Background, light, occluders, render, blur -> (image, visible subject mask, occluder count)."""
        opt = self.options
        background = appearance.random_background(rng, h, w, opt.background_dir)
        light = appearance.random_light(rng)
        count = int(rng.integers(1, 3)) if rng.random() < opt.occlusion_share else 0
        occluders = appearance.random_occluders(rng, np.asarray(subject.vertices), count)
        result = self.renderer(h, w).render_meshes([subject] + occluders, K, background, light)
        image = result.color
        if rng.random() < opt.blur_share:
            image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.4, 1.2)))
        return np.ascontiguousarray(image), result.labels == 0, count


class BodySampler(_SamplerBase):
    """Random people rendered with an SMPL-structured :class:`hmr.body.BodyModel`."""

    def __init__(self, model: "torch.nn.Module", options: SceneOptions) -> None:  # noqa: F821
        super().__init__(options)
        if model.kind != "body":
            raise ValueError(f"BodySampler needs a body model, got {model.name} ({model.kind})")
        missing = {"spin24", "openpose25"} - set(model.keypoint_sets())
        if missing:
            raise ValueError(f"{model.name} cannot provide the keypoint sets {sorted(missing)} that SPIN-style "
                             "annotations need (part/S: spin24, openpose: openpose25)")
        self.model = model.eval()
        with torch.no_grad():
            rest = model()
        self.prior = BodyPosePrior(rest.joints[0].double().numpy())
        self.faces = model.faces.numpy()
        self.regions = appearance.body_regions(rest.vertices[0].double().numpy(), model.weights.argmax(1).numpy())
        self.weights = options.archetype_weights or BODY_ARCHETYPE_WEIGHTS

    @torch.no_grad()
    def generate(self, rng: np.random.Generator, count: int) -> List[Sample]:
        """``count`` samples; the whole batch is posed with one forward pass."""
        opt = self.options
        body_pose, kinds = self.prior.sample(rng, count, self.weights)
        orient = np.stack([scene.body_view_rotation(rng, opt.full_sphere_share) for _ in range(count)])
        betas = np.clip(rng.normal(0.0, opt.shape_std, (count, self.model.num_betas)), -3, 3)
        rotmat = np.concatenate([orient[:, None], body_pose], axis=1).astype(np.float32)
        out = self.model(full_pose=torch.from_numpy(rotmat), betas=torch.from_numpy(betas).float())
        verts0, joints0 = out.vertices.double().numpy(), out.joints.double().numpy()

        cameras, transl = [], np.zeros((count, 3))
        for i in range(count):
            h, w, fov, K = self._camera(rng)
            framing = scene.frame_mesh(verts0[i], K, w, h, float(rng.uniform(*opt.fill)), rng,
                                       truncate=bool(rng.random() < opt.truncation_share))
            cameras.append((h, w, fov, K, framing))
            transl[i] = framing.transl
        verts = torch.from_numpy(verts0 + transl[:, None]).float()
        joints = torch.from_numpy(joints0 + transl[:, None]).float()
        spin = self.model.keypoints(verts, joints, "spin24").double().numpy()
        openpose = self.model.keypoints(verts, joints, "openpose25").double().numpy()
        verts_np, joints_np = verts.double().numpy(), joints.double().numpy()
        pose_aa = matrix_to_axis_angle(rotmat).reshape(count, -1)

        samples = []
        for i in range(count):
            h, w, fov, K, framing = cameras[i]
            colors = appearance.body_colors(rng, self.regions)
            subject = Mesh(verts_np[i].astype(np.float32), self.faces, colors, specular=float(rng.uniform(0, 0.3)))
            image, mask, occluders = self._compose(rng, subject, K, h, w)
            uv = project(verts_np[i], K)
            lo = np.clip(uv.min(0), 0, [w - 1, h - 1])
            hi = np.clip(uv.max(0), 0, [w - 1, h - 1])
            ann = {
                "center": (lo + hi) / 2,
                "scale": BBOX_EXPAND * max(float((hi - lo).max()), 1.0) / 200.0,
                "part": with_visibility(project(spin[i], K), spin[i][:, 2], h, w),
                "S": np.concatenate([spin[i] - joints_np[i, 0], np.ones((24, 1))], axis=1),
                "pose": pose_aa[i],
                "shape": betas[i],
                "has_smpl": 1.0,
                "openpose": with_visibility(project(openpose[i], K), openpose[i][:, 2], h, w),
                "gender": "n",
                "focal_l": float(K[0, 0]),
                "K": K,
                "img_size": np.array([h, w]),
                "transl": transl[i],
                "rotmat": rotmat[i].astype(np.float64),
            }
            meta = {"archetype": int(kinds[i]), "fov": fov, "fill": framing.fill, "truncated": framing.truncated,
                    "occluders": occluders, "mask_pixels": int(mask.sum())}
            samples.append(Sample(image, mask, ann, meta))
        return samples


class HandSampler(_SamplerBase):
    """Random right and left hands. Every stored sample is a RIGHT hand (FreiHAND's convention): a left hand is
    posed with the left model, rendered with the principal point that the left-right image flip takes to the image
    centre, and stored mirrored (image flipped, geometry x -> -x, K with cx = w/2 as for every sample, MANO
    parameters of the right model that produce the mirrored mesh); ``is_left`` records which samples were left."""

    def __init__(self, right: "torch.nn.Module", left: Optional["torch.nn.Module"],  # noqa: F821
                 options: SceneOptions) -> None:
        super().__init__(options)
        for m in (right, left):
            if m is not None and m.kind != "hand":
                raise ValueError(f"HandSampler needs hand models, got {m.name} ({m.kind})")
            if m is not None and "freihand21" not in m.keypoint_sets():
                raise ValueError(f"{m.name} cannot provide the FreiHAND-21 keypoints (fingertip vertices missing)")
        if left is None and options.left_share > 0:
            raise ValueError("left_share > 0 needs a left hand model")
        self.right, self.left = right.eval(), None if left is None else left.eval()
        with torch.no_grad():
            out = right()
            tips = right.keypoints(out.vertices, out.joints, "freihand21")[0, [4, 8, 12, 16, 20]].double().numpy()
        self.prior = HandPosePrior(out.joints[0].double().numpy(), tips, right=True)
        self.faces_right = right.faces.numpy()
        self.faces_left = None if left is None else left.faces.numpy()
        self.weights = options.archetype_weights or HAND_ARCHETYPE_WEIGHTS

    @torch.no_grad()
    def generate(self, rng: np.random.Generator, count: int) -> List[Sample]:
        """``count`` samples (annotations in FreiHAND's terms, every one a right hand: see the class)."""
        opt = self.options
        hand_pose, kinds = self.prior.sample(rng, count, self.weights)
        orient = np.stack([scene.random_rotation(rng) for _ in range(count)])
        betas = np.clip(rng.normal(0.0, opt.shape_std, (count, self.right.num_betas)), -3, 3)
        is_left = rng.random(count) < opt.left_share
        # right-hand parameters for every sample; a left sample uses their mirror image (M R M, M = diag(-1,1,1))
        rot_right = np.concatenate([orient[:, None], hand_pose], axis=1)
        rot_posed = np.where(is_left[:, None, None, None], MIRROR_X @ rot_right @ MIRROR_X, rot_right)
        verts0 = np.zeros((count, self.right.num_vertices, 3))
        for flag, model in ((False, self.right), (True, self.left)):
            idx = np.nonzero(is_left == flag)[0]
            if len(idx):
                out = model(full_pose=torch.from_numpy(rot_posed[idx]).float(),
                            betas=torch.from_numpy(betas[idx]).float())
                verts0[idx] = out.vertices.double().numpy()
        # the right model's mesh with rot_right: mirrored left meshes are expressed with it
        out_r = self.right(full_pose=torch.from_numpy(rot_right).float(), betas=torch.from_numpy(betas).float())
        right0 = out_r.vertices.double().numpy()
        pose_mean = self.right.pose_mean.double().numpy().reshape(-1)

        samples = []
        for i in range(count):
            h, w, fov, K = self._camera(rng)
            # Reversing the columns maps pixel u to (w - 1) - u (integer pixel centres): a left hand is rendered
            # with the principal point that this flip takes to K's (w/2), so the stored image has the stored K.
            K_render = K
            if is_left[i]:
                K_render = K.copy()
                K_render[0, 2] = (w - 1) - K[0, 2]
            framing = scene.frame_mesh(verts0[i], K_render, w, h, float(rng.uniform(*opt.fill)), rng,
                                       truncate=bool(rng.random() < opt.truncation_share))
            posed = verts0[i] + framing.transl
            faces = self.faces_left if is_left[i] else self.faces_right
            subject = Mesh(posed.astype(np.float32), faces, appearance.hand_colors(rng, len(posed)),
                           specular=float(rng.uniform(0, 0.3)))
            image, mask, occluders = self._compose(rng, subject, K_render, h, w)
            if is_left[i]:  # store as a right hand: mirror image and geometry (K is already the mirrored camera)
                image, mask = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
                posed = posed @ MIRROR_X
            # translation that puts the right model (rot_right, betas) onto the stored mesh (exact for mirror-
            # consistent left/right models; the stored vertices are the rendered ones in any case)
            transl = (posed - right0[i]).mean(0)
            right_joints = out_r.joints[i].double().numpy() + transl
            xyz = self.right.keypoints(torch.from_numpy(posed[None]).float(),
                                       torch.from_numpy(right_joints[None]).float(), "freihand21")[0].double().numpy()
            aa = matrix_to_axis_angle(rot_right[i])  # (16, 3)
            uv9 = project(xyz[9:10], K)[0]
            mano = np.concatenate([aa[0], (aa[1:] - pose_mean.reshape(15, 3)).reshape(-1), betas[i], uv9,
                                   [np.linalg.norm(xyz[9] - xyz[10])]])
            ann = {
                "K": K, "xyz": xyz, "verts": posed, "mano": mano, "scale": float(np.linalg.norm(xyz[9] - xyz[10])),
                "rotmat": rot_right[i], "transl": transl, "is_left": bool(is_left[i]), "img_size": np.array([h, w]),
            }
            meta = {"archetype": int(kinds[i]), "fov": fov, "fill": framing.fill, "truncated": framing.truncated,
                    "occluders": occluders, "mask_pixels": int(mask.sum())}
            samples.append(Sample(image, mask, ann, meta))
        return samples
