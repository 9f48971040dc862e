"""Backbone speed benchmark: forward + backward images/s of each backbone at its input size, against
MobileNetV3-small (the from-scratch CPU baseline) measured in the same run.

Variants are timed interleaved (baseline, a, b, ..., baseline, a, b, ...), so machine noise hits all alike;
each reported figure is the median over repeats. A frozen backbone is timed as it trains: forward without
gradient through the encoder, backward through the flatten read-out only; the frozen landmark read-out
(``pooling="landmarks"``) has nothing to train, so its figure is the forward pass that feature caching pays once
per crop. MediaPipe networks run on CPU in chunks of ``micro_batch`` images (``MediaPipeNet.cpu_micro_batch``);
``micro_batch=None`` times the same network on whole batches.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from hmr.models.backbone import build_backbone
from hmr.models.mediapipe.network import MediaPipeNet

BASELINE = ("mobilenetv3_small_100", (96, 72), False, False)


@dataclass(frozen=True)
class BackboneVariant:
    """One backbone configuration to time."""

    name: str
    input_size: Tuple[int, int]
    pretrained: bool = False
    frozen: bool = False
    pooling: str = "flatten"
    micro_batch: Optional[int] = 4

    @property
    def label(self) -> str:
        state = "frozen" if self.frozen else ("pretrained" if self.pretrained else "random")
        readout = " landmarks" if self.pooling == "landmarks" else ""
        whole = " whole batch" if self.micro_batch is None else ""
        return f"{self.name} {self.input_size[0]}x{self.input_size[1]} {state}{readout}{whole}"


@dataclass
class BackboneTiming:
    """Median images/s (forward + backward) and the ratio to the baseline (> 1: faster than the baseline)."""

    label: str
    images_per_s: float
    vs_baseline: float
    feature_dim: int
    parameters_m: float

    def as_dict(self) -> dict:
        return asdict(self)


def _step_fn(variant: BackboneVariant, batch: int):
    net, dim = build_backbone(variant.name, input_size=variant.input_size, pretrained=variant.pretrained,
                              freeze=variant.frozen, pooling=variant.pooling)
    net.train()
    for module in net.modules():
        if isinstance(module, MediaPipeNet):
            module.cpu_micro_batch = variant.micro_batch
    images = torch.randn(batch, 3, *variant.input_size)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        loss = net(images).square().mean()
        if loss.requires_grad:
            loss.backward()

    params = sum(p.numel() for p in net.parameters()) / 1e6
    return step, dim, params


def benchmark_backbones(variants: Sequence[BackboneVariant], batch: int = 32, repeats: int = 5,
                        warmup: int = 1) -> List[BackboneTiming]:
    """Time one training step (batch ``batch``) of the baseline and every variant, interleaved ``repeats``
    times after ``warmup`` untimed rounds."""
    baseline = BackboneVariant(BASELINE[0], BASELINE[1], BASELINE[2], BASELINE[3])
    everything = [baseline] + [v for v in variants if v != baseline]
    steps = {v: _step_fn(v, batch) for v in everything}
    times: Dict[BackboneVariant, List[float]] = {v: [] for v in everything}
    for round_ in range(warmup + repeats):
        for variant in everything:
            start = time.perf_counter()
            steps[variant][0]()
            if round_ >= warmup:
                times[variant].append(time.perf_counter() - start)
    rate = {v: batch / statistics.median(t) for v, t in times.items()}
    return [BackboneTiming(v.label, round(rate[v], 1), round(rate[v] / rate[baseline], 3), steps[v][1],
                           round(steps[v][2], 2)) for v in everything]
