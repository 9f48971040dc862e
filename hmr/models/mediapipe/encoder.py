"""A converted MediaPipe landmark network as a timm-like image encoder (regression backbone).

Stages: for every stride the graph has, the last tensor at that stride on the encoder path (the ops the
primary output, the landmark regression, depends on) that every such path passes through (grids larger than
1x1 at the native size: the 1x1 outputs of the regression heads are not stages); plus, for BlazePose,
the finest map of the heatmap decoder (stride 4, the input of the heatmap head, fusing the stride-8/16/32
encoder maps). Input: the project's ImageNet-normalised crops (:func:`hmr.data.crop.normalize_image`),
mapped inside the module to the network's own convention.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from hmr.models.mediapipe.convert import NETWORKS, load_network
from hmr.models.mediapipe.network import cut_tensors

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EncoderInfo:
    """Which network an encoder is cut from; ``decoder_output``: TFLite output whose head reads the extra
    decoder stage (``None``: no decoder stage)."""

    network: str
    decoder_output: Optional[str]


ENCODERS: Dict[str, EncoderInfo] = {
    "blazepose_full": EncoderInfo("pose_landmark_full", "Identity_3"),
    "mediapipe_hand": EncoderInfo("hand_landmark_full", None),
}


def network_input_affine(network: str) -> Tuple[Tensor, Tensor]:
    """``(scale, shift)`` ``(1, 3, 1, 1)``: ImageNet-normalised crops -> RGB in [0, 1] (x * std + mean) -> the
    input range of MediaPipe network ``network`` (a key of :data:`NETWORKS`)."""
    lo, hi = NETWORKS[network].input_range
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    return std * (hi - lo), mean * (hi - lo) + lo


def encoder_stages(spec: Dict[str, Any], decoder_output: Optional[str] = None) -> List[Dict[str, Any]]:
    """``[{"tensor", "reduction", "num_chs", "kind"}]`` of a graph spec, by stride (see the module docstring);
    ``kind`` is ``"encoder"`` or ``"decoder"`` (the decoder stage comes last)."""
    height = spec["tensors"][spec["inputs"][0]]["shape"][1]
    types = {op["output"]: op["type"] for op in spec["ops"]}
    by_stride: Dict[int, str] = {}
    for name in cut_tensors(spec, spec["outputs"][:1]):
        shape = spec["tensors"][name]["shape"]
        if types[name] != "pad" and shape[1] * shape[2] > 1 and height % shape[1] == 0:
            by_stride[height // shape[1]] = name  # the last cut at each stride
    stages = [{"tensor": t, "reduction": s, "num_chs": spec["tensors"][t]["shape"][3], "kind": "encoder"}
              for s, t in sorted(by_stride.items()) if s > 1]
    if decoder_output is not None:
        head = [op for op in spec["ops"] if spec["tensors"][op["output"]]["name"] == decoder_output]
        if not head:
            raise ValueError(f"{spec['name']} has no output {decoder_output!r}")
        tensor = head[0]["inputs"][0]
        shape = spec["tensors"][tensor]["shape"]
        stages.append({"tensor": tensor, "reduction": height // shape[1], "num_chs": shape[3], "kind": "decoder"})
    return stages


class MediaPipeEncoder(nn.Module):
    """timm-like encoder view of a MediaPipe landmark network (``name``: a key of :data:`ENCODERS`).

    ``forward(x)`` -> pooled ``(B, num_features)``; ``forward_features(x)`` -> the deepest encoder stage map;
    ``forward_intermediates(x, indices, intermediates_only=True)`` -> stage maps ``(B, C, h, w)``;
    ``feature_info`` lists ``{"num_chs", "reduction", "module", "kind"}`` per stage. ``x`` is an
    ImageNet-normalised RGB crop ``(B, 3, H, W)`` of any size (SAME padding is computed per size; the decoder
    stage resizes to its skip maps). Ops no stage needs (the landmark, heatmap and segmentation heads) are
    dropped; :meth:`prune_intermediate_layers` drops the stages after the deepest one requested.
    ``pretrained=False``: same architecture, randomly initialised; ``decoder_stage=False`` omits the decoder.
    """

    def __init__(self, name: str = "blazepose_full", pretrained: bool = True,
                 weights_dir: Optional[Union[str, Path]] = None, decoder_stage: bool = True) -> None:
        super().__init__()
        if name not in ENCODERS:
            raise KeyError(f"unknown MediaPipe encoder {name!r}; known: {', '.join(ENCODERS)}")
        info = ENCODERS[name]
        self.name = name
        self.net = load_network(info.network, weights_dir, pretrained=pretrained)
        stages = encoder_stages(self.net.spec, info.decoder_output if decoder_stage else None)
        self._taps: List[str] = [s["tensor"] for s in stages]
        self.feature_info: List[Dict[str, Any]] = [
            {"num_chs": s["num_chs"], "reduction": s["reduction"], "module": f"net.layers.{s['tensor']}",
             "kind": s["kind"]} for s in stages]
        self.net.prune(self._taps)
        scale, shift = network_input_affine(info.network)
        self.register_buffer("input_scale", scale, persistent=False)
        self.register_buffer("input_shift", shift, persistent=False)
        self.train()

    @property
    def num_features(self) -> int:
        """Channels of :meth:`forward_features` (the deepest encoder stage)."""
        return int(self.feature_info[self._final()]["num_chs"])

    def _final(self) -> int:
        return max(i for i, f in enumerate(self.feature_info) if f["kind"] == "encoder")

    def network_input(self, x: Tensor) -> Tensor:
        """ImageNet-normalised crops -> the network's input convention."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name} expects images (B, 3, H, W), got {tuple(x.shape)}")
        return x * self.input_scale + self.input_shift

    def _resolve(self, indices: Optional[Union[int, Sequence[int]]]) -> List[int]:
        n = len(self.feature_info)
        if indices is None:
            return list(range(n))
        if isinstance(indices, int):
            return list(range(n - indices, n))
        take = [i % n if -n <= i < n else i for i in indices]
        bad = [i for i in take if not 0 <= i < n]
        if bad:
            raise IndexError(f"{self.name}: stage indices {bad} out of range (stages 0..{n - 1})")
        return take

    def forward_intermediates(self, x: Tensor, indices: Optional[Union[int, Sequence[int]]] = None,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """Stage maps for ``indices`` (list, or an int n = the last n stages); with ``intermediates_only=False``
        returns ``(forward_features(x), maps)``. ``norm`` / ``stop_early`` are accepted for timm compatibility
        (there is no final norm; only the needed ops run anyway)."""
        if output_fmt != "NCHW":
            raise ValueError(f"{self.name} returns NCHW maps only, got output_fmt={output_fmt!r}")
        take = self._resolve(indices)
        names = [self._taps[i] for i in take]
        if intermediates_only:
            return self.net.tensors(self.network_input(x), names)
        maps = self.net.tensors(self.network_input(x), names + [self._taps[self._final()]])
        return maps[-1], maps[:-1]

    def forward_features(self, x: Tensor) -> Tensor:
        return self.net.tensors(self.network_input(x), [self._taps[self._final()]])[0]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return x.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def prune_intermediate_layers(self, indices: Union[int, Sequence[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Keep the stages up to the deepest of ``indices`` and only the ops they need; returns the indices."""
        take = self._resolve(indices)
        keep = max(take) + 1
        if not any(f["kind"] == "encoder" for f in self.feature_info[:keep]):
            raise ValueError(f"{self.name}: pruning must keep at least one encoder stage")
        self._taps = self._taps[:keep]
        self.feature_info = self.feature_info[:keep]
        self.net.prune(self._taps)
        return take
