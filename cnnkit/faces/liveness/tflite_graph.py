"""A small TensorFlow Lite graph, converted once to tensors and run by PyTorch.

MediaPipe's face mesh ships as a .tflite file. Rather than depend on a TF Lite
runtime, the converter reads the flatbuffer (with the pure-Python `tflite`
package, needed only when converting) and stores every constant as a float32
tensor plus the graph as an int64 table, one row per operation; `TFLiteGraph`
runs that table with PyTorch ops. Only the operations MediaPipe's face mesh
and iris models use are supported: CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD,
MAX_POOL_2D, PAD, RESHAPE (DEQUANTIZE of float16 constants is folded in at
conversion). Values are kept NCHW; RESHAPE works on the NHWC order TF Lite means.

Row layout of "graph.ops": [op, out, in0, in1, in2, stride_h, stride_w, same_padding,
activation, filter_h, filter_w, 0...]; tensor indices refer to "t{index}" constants
or to values computed by earlier rows. "graph.io" is [input, output0, output1, ...].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import SettingsError
from ...runtime.extras import require

OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 2, "PRELU": 3, "ADD": 4, "MAX_POOL_2D": 5, "PAD": 6, "RESHAPE": 7}
#: TF Lite fused activations: NONE 0, RELU 1, RELU_N1_TO_1 2, RELU6 3.
ROW = 12


def convert_tflite(path: str) -> dict[str, torch.Tensor]:
    """The constants and op table of a .tflite file (see the module docstring)."""
    tflite = require("tflite", extra="video", purpose="converting the MediaPipe .tflite models")
    buf = open(path, "rb").read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    tensor_types = {tflite.TensorType.FLOAT32: "<f4", tflite.TensorType.FLOAT16: "<f2",
                    tflite.TensorType.INT32: "<i4"}

    def constant(index: int) -> np.ndarray | None:
        t = graph.Tensors(index)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if not isinstance(data, np.ndarray) or data.size == 0:
            return None
        if t.Type() not in tensor_types:
            raise SettingsError(f"{path}: tensor {t.Name()!r} has an unsupported type {t.Type()}")
        return np.frombuffer(data.tobytes(), dtype=tensor_types[t.Type()]).reshape(t.ShapeAsNumpy())

    out: dict[str, torch.Tensor] = {}
    alias: dict[int, int] = {}  # DEQUANTIZE output -> its constant input
    rows = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ins = [alias.get(op.Inputs(k), op.Inputs(k)) for k in range(op.InputsLength())]
        dst = op.Outputs(0)
        if name == "DEQUANTIZE":
            value = constant(ins[0])
            if value is None:
                raise SettingsError(f"{path}: DEQUANTIZE of a computed tensor is not supported")
            alias[dst] = ins[0]
            out[f"t{ins[0]}"] = torch.from_numpy(value.astype(np.float32))
            continue
        if name not in OPS:
            raise SettingsError(f"{path}: operation {name} is not supported by cnnkit's TF Lite reader")
        if name == "RESHAPE":  # the target shape, from the output tensor itself
            ins = ins[:1]
            out[f"shape{dst}"] = torch.tensor(graph.Tensors(dst).ShapeAsNumpy().tolist(), dtype=torch.int64)
        for k in ins[1:]:
            if k >= 0 and f"t{k}" not in out:
                value = constant(k)
                if value is not None:
                    out[f"t{k}"] = torch.from_numpy(value.astype(np.float32 if value.dtype.kind == "f" else np.int64))
        row = [OPS[name], dst, *(ins + [-1, -1, -1])[:3]] + [1, 1, 0, 0, 1, 1]
        opts = op.BuiltinOptions()
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D"):
            cls = {"CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
                   "MAX_POOL_2D": tflite.Pool2DOptions}[name]
            o = cls()
            o.Init(opts.Bytes, opts.Pos)
            row[5:9] = [o.StrideH(), o.StrideW(), int(o.Padding() == tflite.Padding.SAME), o.FusedActivationFunction()]
            if name == "MAX_POOL_2D":
                row[9:11] = [o.FilterHeight(), o.FilterWidth()]
            elif o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
                raise SettingsError(f"{path}: dilated convolutions are not supported")
        elif name == "ADD":
            o = tflite.AddOptions()
            o.Init(opts.Bytes, opts.Pos)
            row[8] = o.FusedActivationFunction()
        rows.append(row + [0] * (ROW - len(row)))
    out["graph.ops"] = torch.tensor(rows, dtype=torch.int64)
    out["graph.io"] = torch.tensor([graph.Inputs(0)] + [graph.Outputs(k) for k in range(graph.OutputsLength())],
                                   dtype=torch.int64)
    return out


def _same_pad(x: torch.Tensor, kh: int, kw: int, sh: int, sw: int, value: float = 0.0) -> torch.Tensor:
    # TensorFlow's SAME: output = ceil(size / stride), the extra pixel of padding goes after.
    h, w = x.shape[-2:]
    ph = max((-(-h // sh) - 1) * sh + kh - h, 0)
    pw = max((-(-w // sw) - 1) * sw + kw - w, 0)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


def _activate(x: torch.Tensor, kind: int) -> torch.Tensor:
    if kind == 0:
        return x
    if kind == 1:
        return F.relu(x)
    if kind == 3:
        return F.relu6(x)
    if kind == 2:
        return x.clamp(-1, 1)
    raise SettingsError(f"unsupported fused activation {kind}")


class TFLiteGraph(nn.Module):
    """Runs a converted graph: (N, C, H, W) float in, the graph's outputs (NCHW) out."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.ops = [tuple(int(v) for v in row) for row in state["graph.ops"].tolist()]
        io = state["graph.io"].tolist()
        self.input, self.outputs = int(io[0]), [int(v) for v in io[1:]]
        self.shapes = {int(k[5:]): [int(v) for v in t.tolist()] for k, t in state.items() if k.startswith("shape")}
        self.consts = nn.ParameterDict()
        for key, value in state.items():
            if key.startswith("t"):
                self.consts[key] = nn.Parameter(self._layout(key, value, state), requires_grad=False)

    def _layout(self, key: str, value: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        index = int(key[1:])
        for row in state["graph.ops"].tolist():
            op, _, _a, b, _c = row[:5]
            if b == index and op == OPS["CONV_2D"]:  # (O, H, W, I) -> (O, I, H, W)
                return value.permute(0, 3, 1, 2).contiguous()
            if b == index and op == OPS["DEPTHWISE_CONV_2D"]:  # (1, H, W, C) -> (C, 1, H, W)
                return value.permute(3, 0, 1, 2).contiguous()
            if b == index and op == OPS["PRELU"]:  # (..., C) -> (1, C, 1, 1)
                return value.reshape(1, -1, 1, 1).contiguous()
            if b == index and op == OPS["PAD"]:  # NHWC pairs, kept as they are
                return value.to(torch.float32)
        return value

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values: dict[int, torch.Tensor] = {self.input: x}

        def get(index: int) -> torch.Tensor:
            return values[index] if index in values else self.consts[f"t{index}"]

        for op, dst, a, b, c, sh, sw, same, act, kh, kw, _ in self.ops:
            if op == OPS["CONV_2D"] or op == OPS["DEPTHWISE_CONV_2D"]:
                weight = get(b)
                inp = get(a)
                if same:
                    inp = _same_pad(inp, weight.shape[2], weight.shape[3], sh, sw)
                groups = inp.shape[1] if op == OPS["DEPTHWISE_CONV_2D"] else 1
                y = F.conv2d(inp, weight, get(c) if c >= 0 else None, stride=(sh, sw), groups=groups)
            elif op == OPS["PRELU"]:
                inp, alpha = get(a), get(b)
                y = torch.where(inp >= 0, inp, inp * alpha)
            elif op == OPS["ADD"]:
                y = get(a) + get(b)
            elif op == OPS["MAX_POOL_2D"]:
                inp = _same_pad(get(a), kh, kw, sh, sw, float("-inf")) if same else get(a)
                y = F.max_pool2d(inp, (kh, kw), stride=(sh, sw))
            elif op == OPS["PAD"]:
                pads = get(b).to(torch.int64).tolist()  # NHWC [[before, after], ...]
                (n0, n1), (h0, h1), (w0, w1), (c0, c1) = pads
                y = F.pad(get(a), (w0, w1, h0, h1, c0, c1, n0, n1))
            elif op == OPS["RESHAPE"]:
                shape = list(self.shapes[dst])
                shape[0] = -1  # any batch size
                y = get(a).permute(0, 2, 3, 1).reshape(shape)
                if len(shape) == 4:
                    y = y.permute(0, 3, 1, 2)
            else:
                raise SettingsError(f"unknown op {op}")
            values[dst] = _activate(y, act)
        return [values[i] for i in self.outputs]
