"""The executor: an ``nn.Module`` that runs a parsed TFLite graph spec in NCHW with torch ops."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import torch
from torch import Tensor, nn

from hmr.models.mediapipe.layers import build_layer, init_layer

Spec = Dict[str, Any]
_Step = Tuple[nn.Module, Tuple[str, ...], str, Tuple[str, ...]]


class MediaPipeNet(nn.Module):
    """A converted MediaPipe network.

    ``forward(x)``: ``x`` is ``(B, 3, H, W)`` float in the network's own input convention (see
    :data:`hmr.models.mediapipe.NETWORKS`); returns the outputs in TFLite's order and TFLite's shapes (4-D
    outputs NHWC), so they compare 1:1 with the TFLite interpreter. :meth:`tensors` returns named intermediate
    tensors (4-D ones NCHW) and runs only the ops they need. Weights are ``layers.<tensor>.weight`` / ``.bias``.
    ``channels_last`` (default): run in channels-last memory format (same values and shapes; depthwise
    convolutions are several times faster on CPU).
    """

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.spec: Spec = copy.deepcopy(spec)
        self.name: str = spec["name"]
        self.layers = nn.ModuleDict({op["output"]: build_layer(op) for op in self.spec["ops"]})
        self._ops: Dict[str, Dict[str, Any]] = {op["output"]: op for op in self.spec["ops"]}
        self._schedules: Dict[Tuple[str, ...], List[_Step]] = {}
        self.channels_last = True

    @property
    def input_shape(self) -> List[int]:
        """The native input shape, NCHW."""
        n, h, w, c = self.spec["tensors"][self.spec["inputs"][0]]["shape"]
        return [n, c, h, w]

    @property
    def output_names(self) -> List[str]:
        """TFLite names of the outputs (``Identity``, ``Identity_1``, ...), in output order."""
        return [self.spec["tensors"][t]["name"] for t in self.spec["outputs"]]

    def tensor_info(self, name: str) -> Dict[str, Any]:
        """``{"name": TFLite name, "shape": TFLite (NHWC) shape at the native input size}`` of a tensor."""
        return self.spec["tensors"][name]

    def reset_parameters(self) -> None:
        """Random re-initialisation (same architecture, see :func:`hmr.models.mediapipe.layers.init_layer`)."""
        for layer in self.layers.values():
            init_layer(layer)

    def forward(self, x: Tensor) -> List[Tensor]:
        outputs = self.tensors(x, self.spec["outputs"])
        return [y.permute(0, 2, 3, 1) if y.ndim == 4 else y for y in outputs]

    def tensors(self, x: Tensor, names: Sequence[str]) -> List[Tensor]:
        """The tensors ``names`` (``"t<index>"``; 4-D ones NCHW) for the input ``x``, running only their ops."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name} expects images (B, 3, H, W), got {tuple(x.shape)}")
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        env: Dict[str, Tensor] = {self.spec["inputs"][0]: x}
        for layer, inputs, output, release in self._schedule(tuple(names)):
            env[output] = layer(*[env[i] for i in inputs])
            for name in release:
                del env[name]
        return [env[n] for n in names]

    def _inputs(self, op: Mapping[str, Any]) -> Tuple[str, ...]:
        like = op.get("like")
        return tuple(op["inputs"]) + ((like,) if like else ())

    def _schedule(self, targets: Tuple[str, ...]) -> List[_Step]:
        if targets in self._schedules:
            return self._schedules[targets]
        needed = self.ancestors(targets)
        order = [op for op in self.spec["ops"] if op["output"] in needed]
        last_use: Dict[str, int] = {}
        for k, op in enumerate(order):
            for name in self._inputs(op):
                last_use[name] = k
        keep = set(targets)
        steps = []
        for k, op in enumerate(order):
            release = tuple(sorted({n for n in self._inputs(op) if last_use[n] == k and n not in keep}))
            steps.append((self.layers[op["output"]], self._inputs(op), op["output"], release))
        self._schedules[targets] = steps
        return steps

    def ancestors(self, targets: Sequence[str]) -> Set[str]:
        """Names of the ops' output tensors needed to compute ``targets`` (the targets included)."""
        needed: Set[str] = set()
        stack = list(targets)
        while stack:
            name = stack.pop()
            if name in needed or name in self.spec["inputs"]:
                continue
            if name not in self._ops:
                raise KeyError(f"{self.name} has no tensor {name!r}")
            needed.add(name)
            stack.extend(self._inputs(self._ops[name]))
        return needed

    def prune(self, keep: Sequence[str]) -> None:
        """Drop every op (and its parameters) not needed for the tensors ``keep``; :meth:`forward` then no
        longer works, :meth:`tensors` does for those tensors."""
        needed = self.ancestors(keep)
        for name in [n for n in self.layers if n not in needed]:
            del self.layers[name]
            del self._ops[name]
        self.spec["ops"] = [op for op in self.spec["ops"] if op["output"] in needed]
        self.spec["outputs"] = [t for t in self.spec["outputs"] if t in needed]
        self._schedules.clear()


def build_network(spec: Spec, state_dict: Optional[Mapping[str, Tensor]] = None) -> MediaPipeNet:
    """A :class:`MediaPipeNet` for ``spec`` with ``state_dict`` loaded (strictly), or randomly initialised."""
    net = MediaPipeNet(spec)
    if state_dict is None:
        net.reset_parameters()
    else:
        net.load_state_dict(state_dict, strict=True)
    return net.eval()
