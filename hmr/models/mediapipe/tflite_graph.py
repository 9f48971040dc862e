"""TFLite flatbuffer -> a plain NCHW graph spec plus fp32 weight arrays.

The spec is JSON-like (dicts, lists, str, int, float, bool) so it can be stored next to the weights and read
back with ``torch.load(weights_only=True)``. Tensors are named ``t<index>`` after their TFLite index; every
4-D tensor is NCHW in the spec's world, every other tensor keeps its TFLite shape. Constant-only DEQUANTIZE
(fp16 weights) and DENSIFY (sparse CSR weights) ops are folded; attributes are translated to NCHW (weight
layouts, pads, concatenation / mean axes, NHWC flattening before RESHAPE and FULLY_CONNECTED).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.TensorType import TensorType

from hmr.models.mediapipe.layers import same_pads

Spec = Dict[str, Any]
Weights = Dict[str, np.ndarray]

_OP_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
_DTYPES = {TensorType.FLOAT32: np.float32, TensorType.FLOAT16: np.float16, TensorType.INT32: np.int32,
           TensorType.INT64: np.int64}
_FUSED = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}
_ELEMENTWISE = {"LOGISTIC": "sigmoid", "RELU": "relu", "RELU6": "relu6", "HARD_SWISH": "hard_swish",
                "TANH": "tanh"}
_NCHW_AXIS = (0, 2, 3, 1)  # NHWC axis -> NCHW axis
CONV_TYPES = ("conv2d", "conv_transpose2d")


def _options(op: Any, cls: type) -> Any:
    table = op.BuiltinOptions()
    options = cls()
    options.Init(table.Bytes, table.Pos)
    return options


def _index_vector(dim: Any, segments: bool) -> np.ndarray:
    table = dim.ArraySegments() if segments else dim.ArrayIndices()
    kind = dim.ArraySegmentsType() if segments else dim.ArrayIndicesType()
    vector = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64)


def densify(values: np.ndarray, shape: Tuple[int, ...], sparsity: Any) -> np.ndarray:
    """TFLite sparse tensor (dense and CSR levels, no block map) -> dense array of ``shape``."""
    if sparsity.BlockMapLength():
        raise NotImplementedError("block-sparse TFLite tensors are not supported")
    order = [int(d) for d in sparsity.TraversalOrderAsNumpy()]
    positions = np.zeros(1, np.int64)  # flat position of each stored path into the next level
    coords: List[np.ndarray] = []
    for level in range(sparsity.DimMetadataLength()):
        dim = sparsity.DimMetadata(level)
        if dim.Format() == 0:  # DENSE: every coordinate 0..n-1 under every path
            n = int(dim.DenseSize())
            coords = [np.repeat(c, n) for c in coords] + [np.tile(np.arange(n), len(positions))]
            positions = (positions[:, None] * n + np.arange(n)[None]).reshape(-1)
        else:  # SPARSE_CSR: path p owns entries segments[p] .. segments[p + 1] of `indices`
            segments, indices = _index_vector(dim, True), _index_vector(dim, False)
            counts = segments[positions + 1] - segments[positions]
            starts = np.repeat(segments[positions] - np.cumsum(counts) + counts, counts)
            entries = starts + np.arange(int(counts.sum()))
            coords = [np.repeat(c, counts) for c in coords] + [indices[entries]]
            positions = entries
    dense = np.zeros([shape[d] for d in order], values.dtype)
    dense[tuple(coords)] = values[positions]
    return dense.transpose(np.argsort(order))


class _Parser:
    def __init__(self, data: bytes, name: str) -> None:
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise ValueError(f"{name}: expected one subgraph, got {self.model.SubgraphsLength()}")
        self.graph = self.model.Subgraphs(0)
        self.name = name
        self.consts: Dict[int, np.ndarray] = {}
        self.sparse: Dict[int, Tuple[np.ndarray, Tuple[int, ...], Any]] = {}
        self.ops: List[Dict[str, Any]] = []
        self.weights: Weights = {}
        self._read_constants()

    def shape(self, index: int) -> List[int]:
        tensor = self.graph.Tensors(index)
        return [int(s) for s in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []

    def _read_constants(self) -> None:
        for index in range(self.graph.TensorsLength()):
            tensor = self.graph.Tensors(index)
            buffer = self.model.Buffers(tensor.Buffer())
            if buffer.DataLength() == 0:
                continue
            if tensor.Type() not in _DTYPES:
                raise NotImplementedError(f"{self.name}: tensor type {tensor.Type()} (quantized?) not supported")
            values = np.frombuffer(buffer.DataAsNumpy().tobytes(), _DTYPES[tensor.Type()])
            if tensor.Sparsity() is not None:
                self.sparse[index] = (values, tuple(self.shape(index)), tensor.Sparsity())
            else:
                self.consts[index] = values.reshape(self.shape(index))

    def const(self, index: int) -> np.ndarray:
        if index not in self.consts:
            raise ValueError(f"{self.name}: tensor {index} should be a constant")
        return self.consts[index]

    def ints(self, index: int) -> List[int]:
        return [int(v) for v in self.const(index).reshape(-1)]

    def add(self, kind: str, inputs: List[int], output: int, params: Optional[Dict[str, np.ndarray]] = None,
            **attrs: Any) -> None:
        for i in inputs:
            if i in self.consts or i in self.sparse:
                raise NotImplementedError(f"{self.name}: constant operand {i} of a {kind} op")
        layer = f"t{output}"
        for key, value in (params or {}).items():
            self.weights[f"layers.{layer}.{key}"] = np.ascontiguousarray(value, dtype=np.float32)
        self.ops.append({"type": kind, "inputs": [f"t{i}" for i in inputs], "output": layer, **attrs})

    def parse(self) -> Spec:
        for k in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            opname = _OP_NAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            ins = [int(i) for i in op.InputsAsNumpy()]
            outs = [int(o) for o in op.OutputsAsNumpy()]
            if opname == "CUSTOM":
                opname = code.CustomCode().decode()
            handler: Optional[Callable[..., None]] = getattr(self, f"_op_{opname.lower()}", None)
            if handler is None and opname in _ELEMENTWISE:
                self.add("activation", ins[:1], outs[0], activation=_ELEMENTWISE[opname])
                continue
            if handler is None:
                raise NotImplementedError(f"{self.name}: TFLite op {opname} is not supported")
            handler(op, ins, outs)
        inputs = [int(i) for i in self.graph.InputsAsNumpy()]
        outputs = [int(o) for o in self.graph.OutputsAsNumpy()]
        used = {i for op in self.ops for i in op["inputs"]} | {op["output"] for op in self.ops}
        used |= {f"t{i}" for i in inputs + outputs}
        tensors = {f"t{i}": {"name": self.graph.Tensors(i).Name().decode(), "shape": self.shape(i)}
                   for i in range(self.graph.TensorsLength()) if f"t{i}" in used}
        spec: Spec = {"name": self.name, "inputs": [f"t{i}" for i in inputs],
                      "outputs": [f"t{o}" for o in outputs], "tensors": tensors, "ops": self.ops}
        _fold_pads(spec)
        _link_resizes(spec)
        return spec

    # -- folded constants ------------------------------------------------------------------------------
    def _op_densify(self, op: Any, ins: List[int], outs: List[int]) -> None:
        if ins[0] not in self.sparse:
            raise NotImplementedError(f"{self.name}: DENSIFY of a non-constant tensor")
        self.consts[outs[0]] = densify(*self.sparse[ins[0]])

    def _op_dequantize(self, op: Any, ins: List[int], outs: List[int]) -> None:
        source = self.const(ins[0])
        if source.dtype != np.float16:
            raise NotImplementedError(f"{self.name}: DEQUANTIZE of {source.dtype} (only fp16 weights)")
        self.consts[outs[0]] = source.astype(np.float32)

    # -- layers with weights ---------------------------------------------------------------------------
    def _bias(self, ins: List[int], n: int) -> Dict[str, np.ndarray]:
        return {"bias": self.const(ins[2]).reshape(n)} if len(ins) > 2 and ins[2] >= 0 else {}

    def _op_conv_2d(self, op: Any, ins: List[int], outs: List[int]) -> None:
        o = _options(op, tflite.Conv2DOptions)
        weight = self.const(ins[1]).transpose(0, 3, 1, 2)  # OHWI -> OIHW
        c_in = self.shape(ins[0])[3]
        self._conv(ins, outs, weight, c_in, c_in // weight.shape[1], o)

    def _op_depthwise_conv_2d(self, op: Any, ins: List[int], outs: List[int]) -> None:
        o = _options(op, tflite.DepthwiseConv2DOptions)
        weight = self.const(ins[1]).transpose(3, 0, 1, 2)  # 1 H W (C*m) -> (C*m) 1 H W
        c_in = self.shape(ins[0])[3]
        self._conv(ins, outs, weight, c_in, c_in, o)

    def _conv(self, ins: List[int], outs: List[int], weight: np.ndarray, c_in: int, groups: int, o: Any) -> None:
        params = {"weight": weight, **self._bias(ins, weight.shape[0])}
        self.add("conv2d", ins[:1], outs[0], params, in_channels=c_in, out_channels=int(weight.shape[0]),
                 kernel_size=[int(weight.shape[2]), int(weight.shape[3])], stride=[o.StrideH(), o.StrideW()],
                 dilation=[o.DilationHFactor(), o.DilationWFactor()], groups=groups,
                 padding="same" if o.Padding() == 0 else [0, 0, 0, 0], transposed=False,
                 activation=_FUSED[o.FusedActivationFunction()], bias="bias" in params)

    def _op_convolution2dtransposebias(self, op: Any, ins: List[int], outs: List[int]) -> None:
        # MediaPipe's custom op; options are TfLiteTransposeConvParams {padding (1 SAME, 2 VALID), sw, sh}.
        padding, stride_w, stride_h = np.frombuffer(op.CustomOptionsAsNumpy().tobytes()[:12], np.int32)
        weight = self.const(ins[1]).transpose(3, 0, 1, 2)  # O H W I -> I O H W (ConvTranspose2d layout)
        params = {"weight": weight, **self._bias(ins, weight.shape[1])}
        self.add("conv2d", ins[:1], outs[0], params, in_channels=int(weight.shape[0]),
                 out_channels=int(weight.shape[1]), kernel_size=[int(weight.shape[2]), int(weight.shape[3])],
                 stride=[int(stride_h), int(stride_w)], dilation=[1, 1], groups=1,
                 padding="same" if padding == 1 else [0, 0, 0, 0], transposed=True, activation="none",
                 bias="bias" in params)

    def _op_fully_connected(self, op: Any, ins: List[int], outs: List[int]) -> None:
        o = _options(op, tflite.FullyConnectedOptions)
        if o.WeightsFormat() != 0 or o.KeepNumDims():
            raise NotImplementedError(f"{self.name}: FULLY_CONNECTED with shuffled weights / keep_num_dims")
        weight = self.const(ins[1])
        self.add("linear", ins[:1], outs[0], {"weight": weight, **self._bias(ins, weight.shape[0])},
                 in_features=int(weight.shape[1]), out_features=int(weight.shape[0]),
                 activation=_FUSED[o.FusedActivationFunction()], bias=len(ins) > 2 and ins[2] >= 0,
                 input_nchw=len(self.shape(ins[0])) == 4)

    def _op_prelu(self, op: Any, ins: List[int], outs: List[int]) -> None:
        alpha = self.const(ins[1])
        channels = self.shape(ins[0])[-1]
        if alpha.size != channels:
            raise NotImplementedError(f"{self.name}: PRELU slopes of shape {alpha.shape} (per-channel only)")
        self.add("prelu", ins[:1], outs[0], {"weight": alpha.reshape(channels)}, num_parameters=channels)

    # -- layers without weights ------------------------------------------------------------------------
    def _op_add(self, op: Any, ins: List[int], outs: List[int]) -> None:
        self.add("add", ins, outs[0], activation=_FUSED[_options(op, tflite.AddOptions).FusedActivationFunction()])

    def _op_mul(self, op: Any, ins: List[int], outs: List[int]) -> None:
        self.add("mul", ins, outs[0], activation=_FUSED[_options(op, tflite.MulOptions).FusedActivationFunction()])

    def _op_pad(self, op: Any, ins: List[int], outs: List[int]) -> None:
        pads = self.const(ins[1]).tolist()
        if len(pads) == 4:
            pads = [pads[a] for a in (0, 3, 1, 2)]
        self.add("pad", ins[:1], outs[0], pads=[[int(a), int(b)] for a, b in pads])

    def _pool(self, op: Any, ins: List[int], outs: List[int], kind: str) -> None:
        o = _options(op, tflite.Pool2DOptions)
        kernel, stride = [o.FilterHeight(), o.FilterWidth()], [o.StrideH(), o.StrideW()]
        same = o.Padding() == 0
        act = _FUSED[o.FusedActivationFunction()]
        if kind == "avg" and not same and kernel == self.shape(ins[0])[1:3] and self.shape(outs[0])[1:3] == [1, 1]:
            self.add("mean", ins[:1], outs[0], dims=[2, 3], keepdim=True, activation=act)
        elif kind == "avg" and same:
            raise NotImplementedError(f"{self.name}: AVERAGE_POOL_2D with SAME padding")
        else:
            self.add(f"{kind}_pool2d", ins[:1], outs[0], kernel_size=kernel, stride=stride,
                     padding="same" if same else [0, 0, 0, 0], activation=act)

    def _op_max_pool_2d(self, op: Any, ins: List[int], outs: List[int]) -> None:
        self._pool(op, ins, outs, "max")

    def _op_average_pool_2d(self, op: Any, ins: List[int], outs: List[int]) -> None:
        self._pool(op, ins, outs, "avg")

    def _op_mean(self, op: Any, ins: List[int], outs: List[int]) -> None:
        rank = len(self.shape(ins[0]))
        axes = sorted({a % rank for a in self.ints(ins[1])})
        keep = bool(_options(op, tflite.ReducerOptions).KeepDims())
        dims = sorted(_NCHW_AXIS[a] for a in axes) if rank == 4 else axes
        if rank == 4 and not keep:  # the surviving axes must come out in the same order as TFLite's
            nchw_left = [a for a in (0, 3, 1, 2) if _NCHW_AXIS[a] not in dims]
            if nchw_left != [a for a in range(4) if a not in axes]:
                raise NotImplementedError(f"{self.name}: MEAN over NHWC axes {axes} without keep_dims")
        self.add("mean", ins[:1], outs[0], dims=dims, keepdim=keep, activation="none")

    def _op_reshape(self, op: Any, ins: List[int], outs: List[int]) -> None:
        shape = self.ints(ins[1]) if len(ins) > 1 and ins[1] in self.consts else self.shape(outs[0])
        self.add("reshape", ins[:1], outs[0], shape=shape, input_nchw=len(self.shape(ins[0])) == 4,
                 output_nchw=len(self.shape(outs[0])) == 4)

    def _op_concatenation(self, op: Any, ins: List[int], outs: List[int]) -> None:
        o = _options(op, tflite.ConcatenationOptions)
        rank = len(self.shape(outs[0]))
        axis = o.Axis() % rank
        self.add("concat", ins, outs[0], dim=_NCHW_AXIS[axis] if rank == 4 else axis,
                 activation=_FUSED[o.FusedActivationFunction()])

    def _op_resize_bilinear(self, op: Any, ins: List[int], outs: List[int]) -> None:
        o = _options(op, tflite.ResizeBilinearOptions)
        if not o.AlignCorners() and not o.HalfPixelCenters():
            raise NotImplementedError(f"{self.name}: legacy RESIZE_BILINEAR (neither align_corners nor "
                                      "half_pixel_centers) has no torch equivalent")
        self.add("resize_bilinear", ins[:1], outs[0], size=self.ints(ins[1]), align_corners=bool(o.AlignCorners()),
                 like=None)

    def _op_depth_to_space(self, op: Any, ins: List[int], outs: List[int]) -> None:
        self.add("depth_to_space", ins[:1], outs[0], block_size=_options(op, tflite.DepthToSpaceOptions).BlockSize())


def _consumers(spec: Spec) -> Dict[str, List[Dict[str, Any]]]:
    users: Dict[str, List[Dict[str, Any]]] = {t: [] for t in spec["tensors"]}
    for op in spec["ops"]:
        for name in op["inputs"]:
            users[name].append(op)
    return users


def _fold_pads(spec: Spec) -> None:
    """Fold zero PADs of H and W into the VALID convolutions that read them; make stride-1 SAME explicit."""
    users = _consumers(spec)
    kept = []
    for op in spec["ops"]:
        readers = users[op["output"]]
        spatial_only = op["type"] == "pad" and len(op["pads"]) == 4 and op["pads"][:2] == [[0, 0], [0, 0]]
        if (spatial_only and readers and op["output"] not in spec["outputs"]
                and all(r["type"] == "conv2d" and not r["transposed"] and r["padding"] == [0, 0, 0, 0]
                        for r in readers)):
            for reader in readers:
                reader["padding"] = [*op["pads"][2], *op["pads"][3]]
                reader["inputs"] = [op["inputs"][0] if i == op["output"] else i for i in reader["inputs"]]
            del spec["tensors"][op["output"]]
            continue
        if op["type"] in ("conv2d", "max_pool2d") and op["padding"] == "same" and op["stride"] == [1, 1] \
                and not op.get("transposed", False):
            dil = op.get("dilation", [1, 1])
            (t, b), (l, r) = [same_pads(1, k, 1, d) for k, d in zip(op["kernel_size"], dil)]
            op["padding"] = [t, b, l, r]
        kept.append(op)
    spec["ops"] = kept


def _link_resizes(spec: Spec) -> None:
    """A resize whose only reader adds it to a same-shaped tensor resizes to that tensor's size at run time,
    so the graph also runs at input sizes other than the native one."""
    users = _consumers(spec)
    ready = set(spec["inputs"])
    for op in spec["ops"]:
        ready.add(op["output"])
        readers = users[op["output"]]
        if op["type"] != "resize_bilinear" or len(readers) != 1 or readers[0]["type"] != "add":
            continue
        other = [i for i in readers[0]["inputs"] if i != op["output"]]
        if (len(other) == 1 and other[0] in ready
                and spec["tensors"][other[0]]["shape"] == spec["tensors"][op["output"]]["shape"]):
            op["like"] = other[0]


def parse_tflite(data: bytes, name: str) -> Tuple[Spec, Weights]:
    """Parse a float TFLite model into ``(spec, weights)``; weights are keyed like the executor's state dict,
    ``"layers.<tensor>.<param>"``, ``<tensor>`` being the name of the op's output tensor."""
    parser = _Parser(data, name)
    spec = parser.parse()
    used = {op["output"] for op in spec["ops"]}
    return spec, {k: v for k, v in parser.weights.items() if k.split(".")[1] in used}
