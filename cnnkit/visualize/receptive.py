"""Exact receptive fields from layer arithmetic, for any network built of supported operations.

A unit at row ``i`` of a feature map sees the input rows
``start + i * jump .. start + i * jump + size - 1`` (the same along columns).
Each operation updates ``(jump, size, start)``:

* a convolution or pooling with kernel ``k``, stride ``s``, padding ``p`` and
  dilation ``d``: ``size += (k - 1) * d * jump``, ``start -= p * jump``,
  ``jump *= s``;
* padding before the first element (``F.pad``): ``start -= p * jump``;
* pointwise operations (ReLU, batch norm, adding a bias or a constant) change nothing;
* two feature maps combined elementwise (a residual ``x + f(x)``) or
  concatenated along channels: the union of the two boxes (both must have the
  same jump, or the network has no consistent grid);
* a global pool, a mean over the spatial axes or a fully connected layer: the
  whole input.

That box is the field of a unit far from the edges of every feature map. Near
the bottom and right edges a map can stop short of the input (a strided layer
drops the last pixels) and padded positions have no inputs, so the region that
really influences a unit can be smaller: `Trace.support` finds it exactly by
propagating the unit's position back through the recorded graph of operations,
one axis at a time (every supported operation is separable, so the bounding
box of the true dependency set is the product of the two axes' extents).

The arithmetic is read off the network itself: `trace` runs
it once on an example input under a `TorchDispatchMode` that sees every ATen
operation (``aten.convolution``, ``aten.max_pool2d_with_indices``, ...) with
its real arguments, so functional calls, residual branches and modules of any
nesting are covered without the network being symbolically traceable. An
operation the rules do not cover raises `UntraceableModelError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from ..errors import SettingsError, UntraceableModelError

__all__ = ["Axis", "ReceptiveField", "Trace", "UntraceableModelError", "trace", "trace_receptive_fields"]



@dataclass(frozen=True)
class Axis:
    """Receptive-field arithmetic along one spatial axis.

    Unit ``i`` sees ``[start + i*jump, start + i*jump + size)``.
    """

    jump: int = 1
    size: int = 1
    start: int = 0

    def window(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> Axis:
        return Axis(self.jump * stride, self.size + (kernel - 1) * dilation * self.jump,
                    self.start - padding * self.jump)

    def union(self, other: Axis) -> Axis:
        if self.jump != other.jump:
            raise UntraceableModelError(f"two feature maps on different grids (strides {self.jump} and "
                                        f"{other.jump}) are combined; their receptive fields do not line up")
        start = min(self.start, other.start)
        end = max(self.start + self.size, other.start + other.size)
        return Axis(self.jump, end - start, start)

    def span(self, index: int) -> tuple[int, int]:
        """Input interval ``[lo, hi)`` seen by unit `index` (may reach outside the input)."""
        lo = self.start + index * self.jump
        return lo, lo + self.size


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of one layer's units: rows and columns, or the whole input (`whole`)."""

    rows: Axis
    cols: Axis
    whole: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return self.rows.size, self.cols.size

    @property
    def stride(self) -> tuple[int, int]:
        return self.rows.jump, self.cols.jump

    def box(self, row: int, col: int, image_size: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` (bottom/right exclusive) of the input seen by the unit at (row, col).

        For a `whole`-input field, `image_size` (height, width) gives the box.
        """
        if self.whole:
            if image_size is None:
                raise SettingsError("a whole-input receptive field needs the image size")
            return 0, 0, image_size[0], image_size[1]
        top, bottom = self.rows.span(row)
        left, right = self.cols.span(col)
        return top, left, bottom, right

    def union(self, other: ReceptiveField) -> ReceptiveField:
        if self.whole or other.whole:
            return WHOLE
        return ReceptiveField(self.rows.union(other.rows), self.cols.union(other.cols))

    def to_dict(self) -> dict:
        if self.whole:
            return {"whole": True}
        return {"size": list(self.size), "stride": list(self.stride), "start": [self.rows.start, self.cols.start]}


IDENTITY = ReceptiveField(Axis(), Axis())
WHOLE = ReceptiveField(Axis(), Axis(), whole=True)

aten = torch.ops.aten

# Operations that do not move data across spatial positions (besides those tagged pointwise).
_PASS = {
    aten.clone.default, aten._to_copy.default, aten.detach.default, aten.alias.default,
    aten.contiguous.default, aten.lift_fresh.default, aten.copy_.default,
    aten._native_batch_norm_legit_no_training.default, aten.native_batch_norm.default,
    aten._native_batch_norm_legit.default, aten.native_dropout.default,
    aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default,
    aten.leaky_relu.default, aten.leaky_relu_.default, aten.prelu.default, aten._prelu_kernel.default,
    aten.gelu.default, aten.silu.default, aten.silu_.default, aten.elu.default, aten.elu_.default,
    aten.threshold.default, aten.threshold_.default, aten.clamp_min.default, aten.clamp_min_.default,
}
# Operations after which every unit sees the whole input.
_GLOBAL = {
    aten.mean.dim, aten.sum.dim_IntList, aten.amax.default, aten.amin.default,
    aten.mm.default, aten.addmm.default, aten.linear.default, aten.bmm.default, aten.matmul.default,
    aten._adaptive_avg_pool2d.default, aten.adaptive_max_pool2d.default, aten.flatten.using_ints,
}
_VIEWS = {aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.t.default,
          aten.permute.default, aten.transpose.int, aten.squeeze.dim, aten.unsqueeze.default}
_CONCAT = {aten.cat.default}
_POOLS = {
    aten.max_pool2d_with_indices.default, aten.max_pool2d.default, aten.avg_pool2d.default,
    aten.mkldnn_max_pool2d.default,
}


def _pair(value, default: int) -> tuple[int, int]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return default, default
    if isinstance(value, int):
        return value, value
    value = list(value)
    return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])


def _arg(args, kwargs, index: int, name: str, default=None):
    return args[index] if len(args) > index else kwargs.get(name, default)


def _spatial_size(tensor: Tensor) -> tuple[int, int]:
    """(height, width): the last two axes."""
    height, width = tensor.shape[-2:]
    return int(height), int(width)


@dataclass(eq=False)
class _Node:
    """One operation on the way from the input: its kind, per-axis parameters and inputs."""

    seq: int
    kind: str  # "input" | "window" | "pad" | "join" | "whole"
    field: ReceptiveField
    parents: tuple[_Node, ...] = ()
    # window: per axis (kernel, stride, padding, dilation, ceil_mode); pad: per axis (before, after)
    params: tuple = ()
    shape: tuple[int, int] = (0, 0)  # spatial size in the traced run


class _Tracker(TorchDispatchMode):
    """Runs the network for real while recording, beside every tensor derived from the input, how it was made."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.count = 0

    def node(self, tensor: Tensor) -> _Node | None:
        return self.nodes.get(tensor)

    def add(self, tensor: Tensor, kind: str, field: ReceptiveField, parents=(), params=()) -> _Node:
        self.count += 1
        shape = _spatial_size(tensor) if tensor.dim() >= 2 else (1, 1)
        node = _Node(self.count, kind, field, tuple(parents), params, shape)
        self.nodes[tensor] = node
        return node

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat_in, _ = tree_flatten((args, kwargs))
        parents = [self.nodes[t] for t in flat_in if isinstance(t, Tensor) and t in self.nodes]
        if not parents:
            return out
        flat_out, _ = tree_flatten(out)
        first = next((t for t in flat_out if isinstance(t, Tensor)), None)
        if first is None:
            return out
        kind, field, params, parents = self._rule(func, args, kwargs, parents, first)
        node = None
        for t in flat_out:
            if isinstance(t, Tensor):
                if node is None:
                    node = self.add(t, kind, field, parents, params)
                else:
                    self.nodes[t] = node
        return out

    def _rule(self, func, args, kwargs, parents, out: Tensor):
        if func is aten.convolution.default:
            x, weight = args[0], args[1]
            if args[6]:
                raise UntraceableModelError("transposed convolutions are not supported by the receptive-field "
                                            "arithmetic")
            if weight in self.nodes or x.dim() != 4:
                raise UntraceableModelError("only 2-D convolutions of a feature map by fixed weights are supported")
            kernel = tuple(weight.shape[-2:])
            return self._window(self.nodes[x], kernel, _pair(args[3], 1), _pair(args[4], 0), _pair(args[5], 1), False)
        if func in _POOLS:
            x, kernel = args[0], _pair(args[1], 1)
            stride = _pair(_arg(args, kwargs, 2, "stride"), 0)
            stride = kernel if stride == (0, 0) else stride  # PyTorch: stride defaults to the kernel
            padding = _pair(_arg(args, kwargs, 3, "padding"), 0)
            if func is aten.avg_pool2d.default:
                dilation, ceil = (1, 1), bool(_arg(args, kwargs, 4, "ceil_mode", False))
            else:
                dilation = _pair(_arg(args, kwargs, 4, "dilation"), 1)
                ceil = bool(_arg(args, kwargs, 5, "ceil_mode", False))
            return self._window(self.nodes[x], kernel, stride, padding, dilation, ceil)
        if func in (aten.constant_pad_nd.default, aten.reflection_pad2d.default, aten.replication_pad2d.default):
            x, pad = args[0], list(args[1])
            if func is not aten.constant_pad_nd.default:
                raise UntraceableModelError(f"{func} copies pixels from inside the map into the padding, "
                                            "which the receptive-field arithmetic does not model")
            if x.dim() != 4 and len(pad) > 0:
                raise UntraceableModelError("padding of a tensor that is not a feature map (N, C, H, W)")
            pad = pad + [0] * (4 - len(pad))
            node = self.nodes[x]
            f = node.field
            if not f.whole:
                f = ReceptiveField(Axis(f.rows.jump, f.rows.size, f.rows.start - pad[2] * f.rows.jump),
                                   Axis(f.cols.jump, f.cols.size, f.cols.start - pad[0] * f.cols.jump))
            return "pad", f, ((pad[2], pad[3]), (pad[0], pad[1])), (node,)
        if func in _GLOBAL:
            return "whole", WHOLE, (), tuple(parents)
        if func in _VIEWS:
            x = args[0]
            if x.dim() == 4 and out.dim() == 4 and out.shape == x.shape and func not in (
                    aten.permute.default, aten.transpose.int):
                return "join", self.nodes[x].field, (), (self.nodes[x],)
            return "whole", WHOLE, (), (self.nodes[x],)
        if func in _CONCAT:
            dim = _arg(args, kwargs, 1, "dim", 0)
            if out.dim() == 4 and dim % 4 in (2, 3):
                raise UntraceableModelError("concatenation along a spatial axis is not supported")
            return self._join(parents, out)
        if func in _PASS or torch.Tag.pointwise in func.tags:
            return self._join(parents, out)
        raise UntraceableModelError(f"cannot compute receptive fields through the operation {func}; supported: "
                                    "convolutions, max / average pooling, constant padding, pointwise "
                                    "operations, residual additions, channel concatenation, global pooling")

    @staticmethod
    def _join(parents: list[_Node], out: Tensor):
        shape = tuple(out.shape[-2:]) if out.dim() >= 2 else None
        # A parent broadcast over the map (e.g. a squeeze-excitation gate) reaches every unit.
        if any(p.kind != "whole" and p.shape != shape for p in parents) or out.dim() != 4:
            return "whole", WHOLE, (), tuple(parents)
        field = parents[0].field
        for p in parents[1:]:
            field = field.union(p.field)
        return "join", field, (), tuple(dict.fromkeys(parents))

    @staticmethod
    def _window(node: _Node, kernel, stride, padding, dilation, ceil):
        f = node.field
        if not f.whole:
            f = ReceptiveField(f.rows.window(kernel[0], stride[0], padding[0], dilation[0]),
                               f.cols.window(kernel[1], stride[1], padding[1], dilation[1]))
        params = tuple((kernel[i], stride[i], padding[i], dilation[i], ceil) for i in range(2))
        return "window", f, params, (node,)


@dataclass
class Trace:
    """The recorded graph of a network from its input to some layers: fields, and exact supports.

    `input_size` is the (height, width) of the traced input, which the supports
    are for: trace at the size of the images to be analysed, since map sizes
    (and, in some networks, the operations themselves) depend on it.
    """

    fields: dict[str, ReceptiveField]
    shapes: dict[str, tuple[int, ...]]
    input_size: tuple[int, int]
    _nodes: dict[str, _Node] = dc_field(repr=False, default_factory=dict)

    def support(self, layer: str, rows, cols) -> np.ndarray:
        """Exact boxes ``(top, left, bottom, right)`` (one row per unit) of the input pixels that can
        influence units at (`rows[i]`, `cols[i]`) of `layer`, for an input of `input_size`.

        Empty where a unit depends on no input pixel (a padded position): then bottom <= top.
        """
        rows, cols = np.atleast_1d(np.asarray(rows, dtype=np.int64)), np.atleast_1d(np.asarray(cols, dtype=np.int64))
        node = self._nodes[layer]
        out = np.zeros((len(rows), 4), dtype=np.int64)
        if node.field.whole or _reaches_whole(node):
            out[:, 2], out[:, 3] = self.input_size
            return out
        sizes = {id(n): n.shape for n in _ancestors(self._nodes.values())}
        for axis, positions, (lo, hi) in ((0, rows, (0, 2)), (1, cols, (1, 3))):
            mask = _back_propagate(node, axis, positions, sizes)
            anywhere = mask.any(1)
            first = mask.argmax(1)
            last = mask.shape[1] - 1 - mask[:, ::-1].argmax(1)
            out[:, lo] = np.where(anywhere, first, 0)
            out[:, hi] = np.where(anywhere, last + 1, 0)
        return out


def _ancestors(nodes) -> list[_Node]:
    seen: dict[int, _Node] = {}
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen[id(n)] = n
            stack.extend(n.parents)
    return list(seen.values())


def _reaches_whole(node: _Node) -> bool:
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n.kind == "whole":
            return True
        for p in n.parents:
            if id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    return False


def _back_propagate(node: _Node, axis: int, positions: np.ndarray, sizes: dict[int, tuple[int, int]]) -> np.ndarray:
    """(len(positions), input size) boolean: which input rows (axis 0) or columns (1) reach each position."""
    masks: dict[int, np.ndarray] = {}
    order: dict[int, _Node] = {}
    if positions.size and (positions.min() < 0 or positions.max() >= sizes[id(node)][axis]):
        raise SettingsError(f"unit positions must lie in 0..{sizes[id(node)][axis] - 1}")
    start = np.zeros((len(positions), sizes[id(node)][axis]), dtype=bool)
    start[np.arange(len(positions)), positions] = True
    masks[id(node)], order[id(node)] = start, node
    while True:
        pending = [n for k, n in order.items() if k in masks]
        current = max(pending, key=lambda n: n.seq)  # creation order is a topological order
        mask = masks.pop(id(current))
        del order[id(current)]
        if current.kind == "input":
            return mask
        for parent, parent_mask in _back_step(current, axis, mask, sizes):
            if id(parent) in masks:
                masks[id(parent)] |= parent_mask
            else:
                masks[id(parent)], order[id(parent)] = parent_mask, parent


def _back_step(node: _Node, axis: int, mask: np.ndarray, sizes: dict[int, tuple[int, int]]):
    if node.kind == "join":
        return [(p, mask.copy()) for p in node.parents]
    (parent,) = node.parents
    n_in = sizes[id(parent)][axis]
    out = np.zeros((mask.shape[0], n_in), dtype=bool)
    if node.kind == "pad":
        before = node.params[axis][0]
        src = np.arange(mask.shape[1]) - before  # output index o holds input index o - before
        valid = (src >= 0) & (src < n_in)
        out[:, src[valid]] = mask[:, valid]
        return [(parent, out)]
    kernel, stride, padding, dilation, _ = node.params[axis]
    base = np.arange(mask.shape[1]) * stride - padding
    for tap in range(kernel):
        src = base + tap * dilation
        valid = (src >= 0) & (src < n_in)
        out[:, src[valid]] |= mask[:, valid]
    return [(parent, out)]


def trace(model: nn.Module, layers: Mapping[str, nn.Module], example: Tensor, *, forward=None) -> Trace:
    """Run ``forward(example)`` (default ``model(example)``) once without gradients, recording the
    operations from the input to each module of `layers` (name -> module); stops when all have run.

    Raises `UntraceableModelError` when an operation on the way to a requested
    layer is not covered, or a layer never runs. Supports (`Trace.support`)
    are for inputs of the example's size.
    """
    from .hooks import StopForward

    tracker = _Tracker()
    nodes: dict[str, _Node] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    errors: dict[str, str] = {}

    def make_hook(name: str):
        def hook(module, inputs, output):
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            node = tracker.node(tensor) if isinstance(tensor, Tensor) else None
            if node is None:
                errors.setdefault(name, "its output does not depend on the input image")
            elif name not in nodes:
                nodes[name], shapes[name] = node, tuple(tensor.shape)
            if len(nodes) == len(layers):
                raise StopForward
        return hook

    handles = [module.register_forward_hook(make_hook(name)) for name, module in layers.items()]
    x = example.detach().clone()
    try:
        with torch.no_grad(), tracker:
            tracker.add(x, "input", IDENTITY)
            (forward or model)(x)
    except StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    for name in layers:
        if name not in nodes:
            reason = errors.get(name, "it did not run in a forward pass")
            raise UntraceableModelError(f"cannot compute the receptive field of layer {name!r}: {reason}")
    return Trace({n: node.field for n, node in nodes.items()}, shapes, _spatial_size(example), nodes)


def trace_receptive_fields(model: nn.Module, layers: Mapping[str, nn.Module], example: Tensor, *,
                           forward=None) -> dict[str, ReceptiveField]:
    """The receptive field (layer arithmetic) of the output of each module in `layers`; see `trace`."""
    return trace(model, layers, example, forward=forward).fields
