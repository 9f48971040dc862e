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
    convolutions are several times faster on CPU). ``cpu_micro_batch`` (default 4): on CPU, :meth:`tensors` runs
    larger batches in chunks of that many images (same values; on the 2-core machine a batch of 64 256x256 crops
    ran at ~65 ms per crop and chunks of 4 at ~16: the activations of small chunks stay in the CPU's caches,
    ``tools/bench_backbones.py``); ``None`` runs every batch whole.
    """

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.spec: Spec = copy.deepcopy(spec)
        self.name: str = spec["name"]
        self.layers = nn.ModuleDict({op["output"]: build_layer(op) for op in self.spec["ops"]})
        self._ops: Dict[str, Dict[str, Any]] = {op["output"]: op for op in self.spec["ops"]}
        self._schedules: Dict[Tuple[str, ...], List[_Step]] = {}
        self.channels_last = True
        self.cpu_micro_batch: Optional[int] = 4

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
        chunk = self.cpu_micro_batch
        if chunk is None or x.device.type != "cpu" or len(x) <= chunk:
            return self.tensors_from({self.spec["inputs"][0]: x}, names)
        parts = [self.tensors_from({self.spec["inputs"][0]: part}, names) for part in x.split(chunk)]
        return [torch.cat(pieces) for pieces in zip(*parts)]

    def tensors_from(self, given: Mapping[str, Tensor], names: Sequence[str]) -> List[Tensor]:
        """The tensors ``names`` computed from the tensors ``given`` (name -> value, NCHW for 4-D), running only
        the ops between them: e.g. the layers after a cached intermediate map. Every path from the network input
        to ``names`` must pass through ``given``."""
        env: Dict[str, Tensor] = {name: value.contiguous(memory_format=torch.channels_last)
                                  if self.channels_last and value.ndim == 4 else value
                                  for name, value in given.items()}
        for layer, inputs, output, release in self._schedule(tuple(names), tuple(sorted(given))):
            env[output] = layer(*[env[i] for i in inputs])
            for name in release:
                del env[name]
        return [env[n] for n in names]

    def _inputs(self, op: Mapping[str, Any]) -> Tuple[str, ...]:
        like = op.get("like")
        return tuple(op["inputs"]) + ((like,) if like else ())

    def _schedule(self, targets: Tuple[str, ...], given: Tuple[str, ...]) -> List[_Step]:
        if (targets, given) in self._schedules:
            return self._schedules[targets, given]
        needed = self.ancestors(targets, given)
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
        self._schedules[targets, given] = steps
        return steps

    def ancestors(self, targets: Sequence[str], given: Sequence[str] = ()) -> Set[str]:
        """Names of the ops' output tensors needed to compute ``targets`` (the targets included) from the network
        input, or from the tensors ``given`` where they are given (a given tensor is not computed)."""
        needed: Set[str] = set()
        leaves = set(self.spec["inputs"]) | set(given)
        stack = list(targets)
        while stack:
            name = stack.pop()
            if name in needed or name in leaves:
                continue
            if name not in self._ops:
                raise KeyError(f"{self.name} has no tensor {name!r}")
            needed.add(name)
            stack.extend(self._inputs(self._ops[name]))
        return needed

    def cuts(self, targets: Sequence[str]) -> List[str]:
        """Tensors every path from the input to ``targets`` passes through (4-D maps, in execution order): where
        the network can be split into a front part and the ops after it (:meth:`tensors_from`)."""
        return cut_tensors(self.spec, targets)

    def prune(self, keep: Sequence[str], given: Sequence[str] = ()) -> None:
        """Drop every op (and its parameters) not needed for the tensors ``keep`` (computed from ``given`` where
        given: :meth:`tensors_from`); :meth:`forward` then no longer works, :meth:`tensors` /
        :meth:`tensors_from` do for those tensors."""
        needed = self.ancestors(keep, given)
        for name in [n for n in self.layers if n not in needed]:
            del self.layers[name]
            del self._ops[name]
        self.spec["ops"] = [op for op in self.spec["ops"] if op["output"] in needed]
        self.spec["outputs"] = [t for t in self.spec["outputs"] if t in needed]
        self._schedules.clear()


def cut_tensors(spec: Spec, targets: Sequence[str]) -> List[str]:
    """4-D tensors of graph ``spec`` that every path from its input to ``targets`` passes through, in execution
    order (a tensor is such a cut when, right after its op, it is the only tensor later ops still need)."""
    producers = {op["output"]: op for op in spec["ops"]}
    inputs = lambda op: list(op["inputs"]) + ([op["like"]] if op.get("like") else [])  # noqa: E731
    needed: Set[str] = set()
    stack = list(targets)
    while stack:
        name = stack.pop()
        if name in producers and name not in needed:
            needed.add(name)
            stack.extend(inputs(producers[name]))
    order = [op for op in spec["ops"] if op["output"] in needed]
    last_use = {name: len(order) for name in targets}
    for k, op in enumerate(order):
        for name in inputs(op):
            last_use[name] = max(last_use.get(name, -1), k)
    live, found = set(spec["inputs"]), []
    for k, op in enumerate(order):
        live = {t for t in live | {op["output"]} if last_use.get(t, -1) > k}
        if live == {op["output"]} and len(spec["tensors"][op["output"]]["shape"]) == 4:
            found.append(op["output"])
    return found


def build_network(spec: Spec, state_dict: Optional[Mapping[str, Tensor]] = None) -> MediaPipeNet:
    """A :class:`MediaPipeNet` for ``spec`` with ``state_dict`` loaded (strictly), or randomly initialised."""
    net = MediaPipeNet(spec)
    if state_dict is None:
        net.reset_parameters()
    else:
        net.load_state_dict(state_dict, strict=True)
    return net.eval()
