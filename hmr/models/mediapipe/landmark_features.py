"""A converted MediaPipe landmark network's own predictions as regression features (``model.pooling: landmarks``).

The landmark networks end in small regression heads trained on real photos to put keypoints in the image and in
3D: BlazePose full predicts 39 landmarks (x, y in pixels, relative depth z, visibility and presence logits), a
pose-present logit and 39 world landmarks (metres, hip-centred); the hand network 21 landmarks (x, y, z), a
hand-present logit, a handedness logit and 21 world landmarks. A linear read-out of these 313 (body) / 128 (hand)
numbers predicts the body model's pose better than any read-out of the encoder's feature maps measured in
docs/cpu_training.md, section 7, so the regressor's head can lift them to body-model parameters, as 2D-to-3D
lifting methods do, with the crop's bbox information beside them.

The module is the whole network (pruned to those outputs) at its native input size; the features are scaled to
O(1): image coordinates to [-0.5, 0.5] of the crop, depth by the crop width, logits through a sigmoid, world
landmarks in metres.

``align=True`` (the default) runs the network twice, as MediaPipe's tracking does with the previous frame's
landmarks: the first pass's landmarks give the in-plane angle of the alignment vector (BlazePose: hip centre ->
shoulder centre; hand: wrist -> middle-finger MCP), the crop is rotated about its centre so that this vector points
up — the orientation both networks were trained on — and the second pass's landmarks (image and world) are
rotated back into the crop's frame. On the synthetic test crops this lowers the median 2D landmark error from
12.5 % to 7.2 % of the crop side for hands (random wrist rotations) and from 3.1 % to 2.9 % for bodies
(docs/cpu_training.md, section 7).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmr.models.mediapipe.convert import NETWORKS, load_network
from hmr.models.mediapipe.encoder import ENCODERS, network_input_affine
from hmr.models.mediapipe.network import MediaPipeNet


@dataclass(frozen=True)
class LandmarkOutputs:
    """Which TFLite outputs a network's features come from: image landmarks ``(name, values per landmark)``,
    the logits that go through a sigmoid, the world landmarks, and the landmarks whose means give the start and
    end of the alignment vector (MediaPipe's ROI-from-landmarks rotation)."""

    image: Tuple[str, int]
    logits: Tuple[str, ...]
    world: str
    align_start: Tuple[int, ...]
    align_end: Tuple[int, ...]


LANDMARK_OUTPUTS: Dict[str, LandmarkOutputs] = {
    "pose_landmark_full": LandmarkOutputs(("Identity", 5), ("Identity_1",), "Identity_4", (23, 24), (11, 12)),
    "hand_landmark_full": LandmarkOutputs(("Identity", 3), ("Identity_1", "Identity_2"), "Identity_3", (0,), (9,)),
}


class MediaPipeLandmarkFeatures(nn.Module):
    """``forward(x)`` -> ``(B, num_features)`` landmark features (see the module docstring) of ImageNet-normalised
    RGB crops ``x`` (B, 3, H, W) at the network's native size (``input_size``). ``name``: a key of
    :data:`hmr.models.mediapipe.encoder.ENCODERS`; ``pretrained=False`` gives the same architecture randomly
    initialised; ``align``: the rotated second pass of the module docstring.

    ``train_from`` (a tensor name of :meth:`split_points`, e.g. ``"t300"``): the network's ops after that tensor
    get a trainable copy (``top``), initialised from the network; everything up to it, and the whole first
    (alignment) pass, stay the frozen network (``net``, no gradient). :meth:`frozen_part` gives what the frozen
    part computes for a crop — the tensor at ``train_from`` and the alignment rotation, flattened into one vector
    that a feature cache can hold — and :meth:`trainable_part` the features from it. Without ``train_from`` the
    whole network is the frozen part and :meth:`trainable_part` is the identity.

    :meth:`forward` (the image path: evaluation, demo, training without a cache) runs the alignment pass through
    the trained top (no gradient), so the rotation comes from the landmarks the model has learnt, as MediaPipe's
    tracking aligns with its own previous landmarks; the cache keeps the frozen network's alignment, which depends
    on no trained weight. While ``top`` equals ``net`` (before training) both agree,
    ``forward(x) == trainable_part(frozen_part(x))``, and ``align_with_top = False`` makes :meth:`forward` use
    the frozen alignment too (what a cached evaluation during training computes). On the hand preset the trained
    alignment lowered PA-MPJPE from 12.4 to 11.5 mm (docs/cpu_training.md, section 8).
    """

    def __init__(self, name: str = "blazepose_full", pretrained: bool = True,
                 weights_dir: Optional[Union[str, Path]] = None, align: bool = True,
                 train_from: Optional[str] = None) -> None:
        super().__init__()
        self.align = align
        self.align_with_top = True
        self._given_vectors: Optional[Tensor] = None
        if name not in ENCODERS:
            raise KeyError(f"unknown MediaPipe network {name!r}; known: {', '.join(ENCODERS)}")
        self.name = name
        network = ENCODERS[name].network
        self.outputs = LANDMARK_OUTPUTS[network]
        self.net = load_network(network, weights_dir, pretrained=pretrained)
        by_name = {self.net.spec["tensors"][t]["name"]: t for t in self.net.spec["outputs"]}
        wanted = (self.outputs.image[0],) + self.outputs.logits + (self.outputs.world,)
        self._tensors = [by_name[n] for n in wanted]
        self.net.prune(self._tensors)
        self.input_size: Tuple[int, int] = tuple(NETWORKS[network].input_size)  # type: ignore[assignment]
        sizes = [int(torch.tensor(self.net.spec["tensors"][t]["shape"][1:]).prod()) for t in self._tensors]
        self.num_features = sum(sizes)
        self.num_landmarks = sizes[0] // self.outputs.image[1]
        scale, shift = network_input_affine(network)
        self.register_buffer("input_scale", scale, persistent=False)
        self.register_buffer("input_shift", shift, persistent=False)
        self.train_from = train_from
        self.top: Optional[MediaPipeNet] = None
        if train_from is not None:
            points = self.split_points()
            if train_from not in points:
                listed = ", ".join(f"{t} {tuple(shape)}" for t, shape in points.items())
                raise ValueError(f"{name}: cannot train from tensor {train_from!r}; the landmark outputs can be "
                                 f"computed from one of (tensor, native (H, W, C)): {listed}")
            height, width, channels = points[train_from]
            self.split_shape = (channels, height, width)
            self.top = copy.deepcopy(self.net)
            self.top.prune(self._tensors, given=[train_from])
            self.net.requires_grad_(False)

    def split_points(self) -> Dict[str, Tuple[int, int, int]]:
        """Tensors the landmark outputs can be computed from alone (``train_from`` candidates, in execution
        order) with their (H, W, C) at the native input size."""
        return {t: tuple(self.net.spec["tensors"][t]["shape"][1:]) for t in self.net.cuts(self._tensors)}

    def forward(self, x: Tensor) -> Tensor:
        return self.trainable_part(self._split(x, trained_alignment=self.align_with_top))

    @contextmanager
    def aligned_by(self, vectors: Tensor) -> Iterator[None]:
        """Within the block, :meth:`forward` rotates crop ``b`` so that ``vectors[b]`` (crop axes: x right, y
        down) points up, instead of running its alignment pass: MediaPipe's tracking, where the landmarks a
        keypoint detector already found on the frame (e.g. hip centre -> shoulder centre) give the rotation.
        Saves one of the two network passes per crop."""
        if vectors.ndim != 2 or vectors.shape[1] != 2:
            raise ValueError(f"alignment vectors must be (B, 2), got {tuple(vectors.shape)}")
        self._given_vectors = vectors
        try:
            yield
        finally:
            self._given_vectors = None

    def frozen_part(self, x: Tensor) -> Tensor:
        """What the frozen network computes for crops ``x``: the features themselves without ``train_from``, else
        ``(B, C*H*W + 4)`` = the tensor at ``train_from`` of the (aligned) pass, flattened, and the 2x2 alignment
        rotation (the identity without ``align``). No gradient flows into the frozen network."""
        return self._split(x, trained_alignment=False)

    def _split(self, x: Tensor, trained_alignment: bool) -> Tensor:
        """:meth:`frozen_part`, with the alignment pass through the trained top when ``trained_alignment``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name} expects images (B, 3, H, W), got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"{self.name} landmark features need crops of its native size {self.input_size} "
                             f"(set model.input_size and data.crop_size), got {tuple(x.shape[-2:])}")
        x = x * self.input_scale + self.input_shift
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.top is None):
            rotation = torch.eye(2, dtype=x.dtype, device=x.device).expand(len(x), 2, 2)
            if self.align:
                if self._given_vectors is not None:
                    if len(self._given_vectors) != len(x):
                        raise ValueError(f"{len(self._given_vectors)} alignment vectors for {len(x)} crops")
                    rotation = self._rotation_towards(self._given_vectors.to(x))
                else:
                    image, _, _ = self._decode(self._first_pass(x, trained_alignment))
                    rotation = self._alignment(image[..., :2])
                grid = F.affine_grid(torch.cat([rotation, rotation.new_zeros(len(x), 2, 1)], dim=2), list(x.shape),
                                     align_corners=False)
                x = F.grid_sample(x, grid, align_corners=False, padding_mode="border")
            if self.top is None:
                return self._features(self.net.tensors(x, self._tensors), rotation)
            split = self.net.tensors(x, [self.train_from])[0]
            return torch.cat([split.flatten(1), rotation.flatten(1)], dim=1)

    def _first_pass(self, x: Tensor, trained: bool) -> List[Tensor]:
        """The alignment pass's outputs: the frozen network's, or through the trained top (no gradient)."""
        if not trained or self.top is None:
            return self.net.tensors(x, self._tensors)
        with torch.no_grad():
            split = self.net.tensors(x, [self.train_from])[0]
            return self.top.tensors_from({self.train_from: split}, self._tensors)

    def trainable_part(self, frozen: Tensor) -> Tensor:
        """Features from :meth:`frozen_part`'s output (the identity without ``train_from``)."""
        if self.top is None:
            return frozen
        channels, height, width = self.split_shape
        split = frozen[:, :channels * height * width].reshape(len(frozen), channels, height, width)
        rotation = frozen[:, channels * height * width:].reshape(len(frozen), 2, 2)
        return self._features(self.top.tensors_from({self.train_from: split}, self._tensors), rotation)

    def image_landmarks(self, features: Tensor) -> Tensor:
        """``(B, L, 2)`` image landmarks (x right, y down, in [-0.5, 0.5] of the crop side) read from features."""
        per = self.outputs.image[1]
        return features[:, :self.num_landmarks * per].reshape(len(features), self.num_landmarks, per)[..., :2]

    def _features(self, outputs: List[Tensor], rotation: Tensor) -> Tensor:
        """The feature vector from the network's outputs on a crop rotated by ``rotation`` (B, 2, 2)."""
        image, logits, world = self._decode(outputs)
        # a point q of the rotated crop (centred coordinates) shows the original crop's point rotation @ q
        image = torch.cat([image[..., :2] @ rotation.transpose(1, 2), image[..., 2:]], dim=-1)
        world = torch.cat([world[..., :2] @ rotation.transpose(1, 2), world[..., 2:]], dim=-1)
        scaled = [image[..., :3]] + ([torch.sigmoid(image[..., 3:])] if image.shape[-1] > 3 else [])
        parts = [torch.cat(scaled, dim=-1).flatten(1)] + [torch.sigmoid(t.flatten(1)) for t in logits]
        return torch.cat(parts + [world.flatten(1)], dim=1)

    def _decode(self, outputs: List[Tensor]) -> Tuple[Tensor, List[Tensor], Tensor]:
        """One pass's outputs as image landmarks ``(B, L, per)`` with x, y in [-0.5, 0.5] of the crop and z
        divided by its width (visibility / presence still logits), the flag logits, world landmarks ``(B, L, 3)``."""
        image, *logits, world = outputs
        height, width = self.input_size
        image = image.reshape(len(image), self.num_landmarks, self.outputs.image[1])
        image = torch.cat([image[..., 0:1] / width - 0.5, image[..., 1:2] / height - 0.5, image[..., 2:3] / width,
                           image[..., 3:]], dim=-1)
        return image, logits, world.reshape(len(world), self.num_landmarks, 3)

    def _alignment(self, xy: Tensor) -> Tensor:
        """``(B, 2, 2)`` rotations (image axes: x right, y down) that turn the up direction into the alignment
        vector of landmarks ``xy`` (B, L, 2); a crop sampled through them shows that vector pointing up."""
        return self._rotation_towards(xy[:, list(self.outputs.align_end)].mean(1)
                                      - xy[:, list(self.outputs.align_start)].mean(1))

    @staticmethod
    def _rotation_towards(vector: Tensor) -> Tensor:
        """``(B, 2, 2)`` rotations that turn the up direction into ``vector`` (B, 2)."""
        angle = torch.atan2(vector[:, 0], -vector[:, 1])
        cos, sin = torch.cos(angle), torch.sin(angle)
        return torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
