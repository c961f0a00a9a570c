"""An ONNX inference graph, converted once to tensors and run by PyTorch (no ONNX runtime needed).

`convert_onnx(path)` reads the model with the `onnx` package (used only when
converting) and returns a flat dict of tensors: every initializer as
"init.<name>", and the graph itself as JSON bytes in "graph.json" (inputs,
outputs, and one entry per node: op, input and output names, attributes).
`OnnxGraph(tensors)` runs that graph with PyTorch ops, on any device, for any
batch size (the files' fixed batch of 1 is not kept).

Only the operations of the face encoders cnnkit ships are supported: Conv,
BatchNormalization, PRelu, Add, Sub, Mul, Flatten, Gemm, Dropout and Identity.
A BatchNormalization that only follows a Conv is folded into that Conv's
weights when the graph is built (the same function, one op fewer).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SettingsError, WeightsError

SUPPORTED = ("Conv", "BatchNormalization", "PRelu", "Add", "Sub", "Mul", "Flatten", "Gemm", "Dropout", "Identity")


def convert_onnx(path: str) -> dict[str, torch.Tensor]:
    """The initializers and the node table of an ONNX file (see the module docstring)."""
    import onnx  # a dependency of cnnkit itself
    from onnx import helper, numpy_helper

    try:
        model = onnx.load(path)
    except Exception as exc:  # onnx raises protobuf's DecodeError and others for damaged files
        raise WeightsError(f"{path}: not a readable ONNX model ({exc})") from None
    graph = model.graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type not in SUPPORTED:
            raise WeightsError(f"{path}: the ONNX operation {node.op_type} is not supported "
                               f"(supported: {', '.join(SUPPORTED)})")
        attributes = {a.name: _plain(helper.get_attribute_value(a)) for a in node.attribute}
        nodes.append({"op": node.op_type, "inputs": list(node.input), "outputs": list(node.output),
                      "attributes": attributes})
    table = {"inputs": [i.name for i in graph.input if i.name not in initializers],
             "outputs": [o.name for o in graph.output], "nodes": nodes}
    out = {f"init.{name}": torch.from_numpy(np.array(array, dtype=np.float32)) for name, array in initializers.items()}
    out["graph.json"] = torch.frombuffer(bytearray(json.dumps(table).encode()), dtype=torch.uint8)
    return out


def _plain(value: Any) -> Any:
    """An attribute value as JSON can hold it (bytes as text, sequences as lists)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, float, str)):
        return value
    raise SettingsError(f"unsupported ONNX attribute value {value!r}")


class OnnxGraph(nn.Module):
    """Runs a converted graph: its one input tensor in, its first output out."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        table = json.loads(bytes(tensors["graph.json"].to(torch.uint8).tolist()).decode())
        if len(table["inputs"]) != 1:
            raise WeightsError(f"the graph has {len(table['inputs'])} inputs; one is supported")
        self.input_name, self.output_name = table["inputs"][0], table["outputs"][0]
        consts = {k[len("init."):]: v.float() for k, v in tensors.items() if k.startswith("init.")}
        self.nodes = _fold_batch_norms(table["nodes"], consts)
        used = {name for node in self.nodes for name in node["inputs"]}
        self.consts = nn.ParameterDict({_key(name): nn.Parameter(_layout(value), requires_grad=False)
                                        for name, value in consts.items() if name in used})

    def const(self, name: str) -> torch.Tensor:
        return self.consts[_key(name)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # channels_last is the faster layout for oneDNN's CPU convolutions
            x = x.contiguous(memory_format=torch.channels_last)
        values: dict[str, torch.Tensor] = {self.input_name: x}

        def get(name: str) -> torch.Tensor:
            return values[name] if name in values else self.const(name)

        for node in self.nodes:
            op, ins, attr = node["op"], node["inputs"], node["attributes"]
            if op == "Conv":
                bias = get(ins[2]) if len(ins) > 2 and ins[2] else None
                y = _conv(get(ins[0]), get(ins[1]), bias, attr)
            elif op == "BatchNormalization":
                y = F.batch_norm(get(ins[0]), get(ins[3]), get(ins[4]), get(ins[1]), get(ins[2]), training=False,
                                 eps=float(attr.get("epsilon", 1e-5)))
            elif op == "PRelu":
                inp, slope = get(ins[0]), get(ins[1])
                if inp.dim() == 4 and slope.dim() == 3 and slope.shape[1:] == (1, 1):  # one slope per channel
                    y = F.prelu(inp, slope.reshape(-1))
                else:  # ONNX's broadcasting, numpy's rules
                    y = torch.where(inp >= 0, inp, inp * slope)
            elif op == "Add":
                y = get(ins[0]) + get(ins[1])
            elif op == "Sub":
                y = get(ins[0]) - get(ins[1])
            elif op == "Mul":
                y = get(ins[0]) * get(ins[1])
            elif op == "Flatten":
                y = torch.flatten(get(ins[0]), start_dim=int(attr.get("axis", 1)))
            elif op == "Gemm":
                y = _gemm(get(ins[0]), get(ins[1]), get(ins[2]) if len(ins) > 2 and ins[2] else None, attr)
            else:  # Dropout, Identity: nothing at inference
                y = get(ins[0])
            values[node["outputs"][0]] = y
        return values[self.output_name]


def _layout(value: torch.Tensor) -> torch.Tensor:
    return value.contiguous(memory_format=torch.channels_last) if value.dim() == 4 else value


def _key(name: str) -> str:
    # ParameterDict keys may not hold dots
    return "c_" + name.replace(".", "_")


def _conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, attr: dict) -> torch.Tensor:
    pads = attr.get("pads", [0, 0, 0, 0])
    top, left, bottom, right = pads
    if (top, left) != (bottom, right):  # asymmetric padding: pad first
        x = F.pad(x, (left, right, top, bottom))
        padding: tuple[int, int] = (0, 0)
    else:
        padding = (top, left)
    return F.conv2d(x, weight, bias, stride=tuple(attr.get("strides", [1, 1])), padding=padding,
                    dilation=tuple(attr.get("dilations", [1, 1])), groups=int(attr.get("group", 1)))


def _gemm(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None, attr: dict) -> torch.Tensor:
    if attr.get("transA", 0):
        a = a.t()
    if attr.get("transB", 0):
        b = b.t()
    y = float(attr.get("alpha", 1.0)) * (a @ b)
    return y + float(attr.get("beta", 1.0)) * c if c is not None else y


def _fold_batch_norms(nodes: list[dict], consts: dict[str, torch.Tensor]) -> list[dict]:
    """Nodes with each Conv -> BatchNormalization pair (the Conv's output used by the BN only) made one Conv."""
    readers: dict[str, int] = {}
    for node in nodes:
        for name in node["inputs"]:
            readers[name] = readers.get(name, 0) + 1
    producer = {node["outputs"][0]: node for node in nodes}
    folded, dropped = [], set()
    for node in nodes:
        source = producer.get(node["inputs"][0]) if node["op"] == "BatchNormalization" else None
        if source is None or source["op"] != "Conv" or readers.get(source["outputs"][0], 0) != 1:
            folded.append(node)
            continue
        gamma, beta, mean, var = (consts[n] for n in node["inputs"][1:5])
        scale = gamma / torch.sqrt(var + float(node["attributes"].get("epsilon", 1e-5)))
        weight_name, bias_name = source["inputs"][1], source["outputs"][0] + ".folded_bias"
        old_bias = consts[source["inputs"][2]] if len(source["inputs"]) > 2 and source["inputs"][2] else 0.0
        consts[weight_name] = consts[weight_name] * scale.reshape(-1, 1, 1, 1)
        consts[bias_name] = beta + (old_bias - mean) * scale
        source["inputs"] = [source["inputs"][0], weight_name, bias_name]
        source["outputs"] = node["outputs"]
        dropped.add(id(node))
    return [n for n in folded if id(n) not in dropped]
