"""NCHW torch layers for the ops of a parsed TFLite graph (see :mod:`hmr.models.mediapipe.tflite_graph`).

Every layer is built from one op dict of the spec; layers with weights hold them as fp32 ``nn.Parameter``s
(``weight``, ``bias``) so the network can be fine-tuned. ``forward`` takes the op's input tensors in order.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> Tuple[int, int]:
    """TensorFlow SAME padding (before, after) of one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


Op = Dict[str, Any]

ACTIVATIONS: Dict[str, Callable[[Tensor], Tensor]] = {
    "none": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "relu_n1_to_1": lambda x: x.clamp(-1.0, 1.0),
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "hard_swish": F.hardswish,
}

# The same activations in place: on a tensor no gradient flows through they avoid a fresh allocation per layer
# (10x faster for the activation itself on CPU: large fresh buffers come back from the OS page by page).
_IN_PLACE: Dict[str, Callable[[Tensor], Tensor]] = {
    "none": lambda x: x,
    "relu": F.relu_,
    "relu6": lambda x: F.relu6(x, inplace=True),
    "relu_n1_to_1": lambda x: x.clamp_(-1.0, 1.0),
    "tanh": torch.tanh_,
    "sigmoid": torch.sigmoid_,
    "hard_swish": lambda x: F.hardswish(x, inplace=True),
}


class Activation:
    """A fused TFLite activation. ``act(y)`` on a tensor the layer has just computed (``fresh``) works in place
    when no gradient flows through ``y``; otherwise (or on a layer's input) it returns a new tensor."""

    def __init__(self, kind: str) -> None:
        self._out, self._in_place = ACTIVATIONS[kind], _IN_PLACE[kind]

    def __call__(self, y: Tensor, fresh: bool = True) -> Tensor:
        return self._in_place(y) if fresh and not y.requires_grad else self._out(y)


class _Padded(nn.Module):
    """Base for ops with TensorFlow padding: explicit ``[top, bottom, left, right]`` or ``"same"`` (computed per
    input size: with stride 2 it depends on whether the size is even)."""

    def __init__(self, op: Op) -> None:
        super().__init__()
        self.kernel_size: Tuple[int, int] = tuple(op["kernel_size"])  # type: ignore[assignment]
        self.stride: Tuple[int, int] = tuple(op["stride"])  # type: ignore[assignment]
        self.dilation: Tuple[int, int] = tuple(op.get("dilation", (1, 1)))  # type: ignore[assignment]
        self.same = op["padding"] == "same"
        self.padding: List[int] = [] if self.same else list(op["padding"])
        self.act = Activation(op["activation"])
        self._cache: Dict[Tuple[int, int], List[int]] = {}

    def pads(self, height: int, width: int) -> List[int]:
        """``[top, bottom, left, right]`` for an input of this size."""
        if not self.same:
            return self.padding
        key = (height, width)
        if key not in self._cache:
            (t, b), (l, r) = [same_pads(n, k, s, d) for n, k, s, d in
                              zip(key, self.kernel_size, self.stride, self.dilation)]
            self._cache[key] = [t, b, l, r]
        return self._cache[key]


class Conv(_Padded):
    """CONV_2D / DEPTHWISE_CONV_2D (``groups``) with the fused activation."""

    def __init__(self, op: Op) -> None:
        super().__init__(op)
        self.groups = int(op["groups"])
        self.weight = nn.Parameter(torch.empty(op["out_channels"], op["in_channels"] // self.groups,
                                               *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(op["out_channels"])) if op["bias"] else None
        self.activation = op["activation"]

    def forward(self, x: Tensor) -> Tensor:
        t, b, l, r = self.pads(x.shape[2], x.shape[3])
        if t == b and l == r:
            y = F.conv2d(x, self.weight, self.bias, self.stride, (t, l), self.dilation, self.groups)
        else:
            y = F.conv2d(F.pad(x, (l, r, t, b)), self.weight, self.bias, self.stride, 0, self.dilation,
                         self.groups)
        return self.act(y)


class ConvTranspose(_Padded):
    """MediaPipe's Convolution2DTransposeBias: a transposed convolution whose SAME output is ``stride x`` the
    input; the padding is cropped from the full output (TFLite puts the odd pixel at the end)."""

    def __init__(self, op: Op) -> None:
        super().__init__(op)
        self.weight = nn.Parameter(torch.empty(op["in_channels"], op["out_channels"], *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(op["out_channels"])) if op["bias"] else None
        self.activation = op["activation"]

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv_transpose2d(x, self.weight, self.bias, self.stride)
        if self.same:
            (h, w), (sh, sw) = x.shape[2:], self.stride
            top = (y.shape[2] - h * sh) // 2
            left = (y.shape[3] - w * sw) // 2
            y = y[:, :, top:top + h * sh, left:left + w * sw]
        return self.act(y)


class Pool(_Padded):
    """MAX_POOL_2D (padding ignored, as in TFLite) / AVERAGE_POOL_2D (VALID only).

    A VALID max pool with kernel == stride keeps the last partial window (``ceil_mode``): identical to TFLite at
    sizes divisible by the stride; at other sizes TFLite's graph cannot run at all (BlazePose adds the pool to a
    SAME strided convolution, which rounds up), this way it can."""

    def __init__(self, op: Op) -> None:
        super().__init__(op)
        self.max = op["type"] == "max_pool2d"
        self.ceil_mode = self.max and not self.same and self.kernel_size == self.stride

    def forward(self, x: Tensor) -> Tensor:
        t, b, l, r = self.pads(x.shape[2], x.shape[3])
        if self.max:
            if t or b or l or r:
                x = F.pad(x, (l, r, t, b), value=float("-inf"))
            return self.act(F.max_pool2d(x, self.kernel_size, self.stride, ceil_mode=self.ceil_mode))
        return self.act(F.avg_pool2d(x, self.kernel_size, self.stride))


class Linear(nn.Module):
    """FULLY_CONNECTED; a 4-D (NCHW) input is flattened in TFLite's NHWC order first."""

    def __init__(self, op: Op) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(op["out_features"], op["in_features"]))
        self.bias = nn.Parameter(torch.empty(op["out_features"])) if op["bias"] else None
        self.activation = op["activation"]
        self.act = Activation(op["activation"])
        self.input_nchw = bool(op["input_nchw"])

    def forward(self, x: Tensor) -> Tensor:
        if self.input_nchw:
            x = x.permute(0, 2, 3, 1)
        return self.act(F.linear(x.reshape(-1, self.weight.shape[1]), self.weight, self.bias))


class PReLU(nn.Module):
    """PRELU with one slope per channel."""

    def __init__(self, op: Op) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(op["num_parameters"]))

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.weight)


class Elementwise(nn.Module):
    """ADD / MUL (with the fused activation) and standalone activations."""

    def __init__(self, op: Op) -> None:
        super().__init__()
        self.kind = op["type"]
        self.act = Activation(op["activation"])

    def forward(self, *xs: Tensor) -> Tensor:
        if self.kind == "add":
            return self.act(xs[0] + xs[1])
        if self.kind == "mul":
            return self.act(xs[0] * xs[1])
        return self.act(xs[0], fresh=False)


class Shape(nn.Module):
    """Ops that move values without arithmetic: PAD, RESHAPE, CONCATENATION, DEPTH_TO_SPACE."""

    def __init__(self, op: Op) -> None:
        super().__init__()
        self.kind = op["type"]
        self.op = {k: v for k, v in op.items() if k not in ("inputs", "output")}
        if self.kind == "pad":  # F.pad wants the last dimension first
            self.flat = [p for pair in reversed(op["pads"]) for p in pair]
        self.act = Activation(op.get("activation", "none"))

    def forward(self, *xs: Tensor) -> Tensor:
        x = xs[0]
        if self.kind == "pad":
            return F.pad(x, self.flat)
        if self.kind == "concat":
            return self.act(torch.cat(xs, dim=self.op["dim"]))
        if self.kind == "depth_to_space":  # TFLite's DCR order: channel = (i * bs + j) * C' + c
            bs = self.op["block_size"]
            n, c, h, w = x.shape
            x = x.reshape(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
            return x.reshape(n, c // (bs * bs), h * bs, w * bs)
        if self.op["input_nchw"]:
            x = x.permute(0, 2, 3, 1)
        y = x.reshape([x.shape[0]] + list(self.op["shape"][1:]))
        return y.permute(0, 3, 1, 2) if self.op["output_nchw"] else y


class Mean(nn.Module):
    """MEAN over (remapped) axes; also a global AVERAGE_POOL_2D."""

    def __init__(self, op: Op) -> None:
        super().__init__()
        self.dims: List[int] = list(op["dims"])
        self.keepdim = bool(op["keepdim"])
        self.act = Activation(op["activation"])

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x.mean(dim=self.dims, keepdim=self.keepdim))


class Resize(nn.Module):
    """RESIZE_BILINEAR (half-pixel centres or align_corners); with a second input, to that tensor's size."""

    def __init__(self, op: Op) -> None:
        super().__init__()
        self.size: Tuple[int, int] = tuple(op["size"])  # type: ignore[assignment]
        self.align_corners = bool(op["align_corners"])

    def forward(self, x: Tensor, like: Optional[Tensor] = None) -> Tensor:
        size = tuple(like.shape[2:]) if like is not None else self.size
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)


_LAYERS: Dict[str, Callable[[Op], nn.Module]] = {
    "conv2d": lambda op: ConvTranspose(op) if op["transposed"] else Conv(op),
    "max_pool2d": Pool, "avg_pool2d": Pool, "linear": Linear, "prelu": PReLU,
    "add": Elementwise, "mul": Elementwise, "activation": Elementwise,
    "pad": Shape, "reshape": Shape, "concat": Shape, "depth_to_space": Shape,
    "mean": Mean, "resize_bilinear": Resize,
}


def build_layer(op: Op) -> nn.Module:
    """The torch layer for one spec op (weights uninitialised: load a state dict or call :func:`init_layer`)."""
    if op["type"] not in _LAYERS:
        raise ValueError(f"unknown op type {op['type']!r} in the graph spec")
    return _LAYERS[op["type"]](op)


def init_layer(layer: nn.Module) -> None:
    """Random initialisation for training from scratch: He-normal (fan-in) convolutions and linear layers with
    the gain of their activation, zero biases, PReLU slopes 0.25."""
    if isinstance(layer, (Conv, ConvTranspose, Linear)):
        gain = math.sqrt(2.0) if layer.activation in ("relu", "relu6") else 1.0
        fan_in = layer.weight[0].numel() if not isinstance(layer, ConvTranspose) else \
            layer.weight.shape[0] * layer.weight[0, 0].numel()
        with torch.no_grad():
            layer.weight.normal_(0.0, gain / math.sqrt(fan_in))
            if layer.bias is not None:
                layer.bias.zero_()
    elif isinstance(layer, PReLU):
        with torch.no_grad():
            layer.weight.fill_(0.25)
