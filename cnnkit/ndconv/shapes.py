"""Shape arithmetic of convolutions in 1, 2 and 3 dimensions, and parameter counts.

Output size along each axis (PyTorch's and the course's formula):

    out = floor((n + 2p - d(k - 1) - 1) / s) + 1

A layer of F filters over C input channels has F * (prod(k) * C / groups + 1)
parameters (one bias per filter). With F filters the output gains a channel axis
of F: 14x14x3 * 5x5x3 (16 filters) -> 10x10x16.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import SettingsError

IntOrSeq = int | Sequence[int]


@dataclass(frozen=True)
class ConvShape:
    """What one convolution layer does to a shape (channels last, as in the course)."""

    dim: int
    input_spatial: tuple[int, ...]
    in_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    filters: int | None
    output_spatial: tuple[int, ...]
    weights: int
    biases: int

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Spatial axes, then the channel axis when there are filters (10x10x16)."""
        return self.output_spatial + ((self.filters,) if self.filters else ())

    @property
    def parameters(self) -> int:
        return self.weights + self.biases

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of one forward pass (one sample)."""
        per_output = math.prod(self.kernel) * self.in_channels
        return math.prod(self.output_spatial) * (self.filters or 1) * per_output

    def describe(self) -> str:
        def fmt(t: Sequence[int]) -> str:
            return "x".join(str(v) for v in t)

        lines = [
            f"{self.dim}D convolution",
            f"input   {fmt(self.input_spatial)}" + (f"x{self.in_channels}" if self.in_channels > 1 else "")
            + f"  ({fmt(self.input_spatial)} positions, {self.in_channels} channel(s))",
            f"kernel  {fmt(self.kernel)}" + (f"x{self.in_channels}" if self.in_channels > 1 else "")
            + f"  stride {fmt(self.stride)}  padding {fmt(self.padding)}  dilation {fmt(self.dilation)}",
            f"output  {fmt(self.output_shape)}"
            + (f"  ({self.filters} filters)" if self.filters else "  (one filter, no channel axis)"),
            f"params  {self.parameters} = {self.weights} weights + {self.biases} biases",
            f"mult-adds {self.multiply_adds}",
        ]
        return "\n".join(lines)


def _tuple(value: IntOrSeq, dim: int, name: str, *, minimum: int) -> tuple[int, ...]:
    if isinstance(value, int):
        values = (value,) * dim
    else:
        values = tuple(int(v) for v in value)
        if len(values) == 1:
            values = values * dim
    if len(values) != dim:
        raise SettingsError(f"{name} has {len(values)} entries for a {dim}D convolution; give 1 or {dim}")
    if any(v < minimum for v in values):
        raise SettingsError(f"{name} must be >= {minimum}, got {values}")
    return values


def conv_output_size(n: int, kernel: int, *, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of one axis; ValueError if the kernel does not fit."""
    span = dilation * (kernel - 1) + 1
    if n + 2 * padding < span:
        raise SettingsError(f"kernel spans {span} positions but the padded input has only {n + 2 * padding}")
    return (n + 2 * padding - span) // stride + 1


def conv_shape(input_spatial: IntOrSeq, kernel: IntOrSeq, *, in_channels: int = 1, filters: int | None = None,
               stride: IntOrSeq = 1, padding: IntOrSeq | str = 0, dilation: IntOrSeq = 1,
               groups: int = 1, bias: bool = True) -> ConvShape:
    """The output shape and parameter count of one convolution.

    `input_spatial` fixes the dimension: 14 (1D), (14, 14) (2D), (14, 14, 14) (3D).
    `padding` is a number per axis, "valid" (0) or "same" (stride 1 only).
    """
    spatial = _tuple(input_spatial, 1, "input", minimum=1) if isinstance(input_spatial, int) \
        else tuple(int(v) for v in input_spatial)
    dim = len(spatial)
    if dim not in (1, 2, 3):
        raise SettingsError(f"input must have 1, 2 or 3 spatial axes, got {dim}")
    if any(v < 1 for v in spatial):
        raise SettingsError(f"input sizes must be >= 1, got {spatial}")
    k = _tuple(kernel, dim, "kernel", minimum=1)
    s = _tuple(stride, dim, "stride", minimum=1)
    d = _tuple(dilation, dim, "dilation", minimum=1)
    if isinstance(padding, str):
        if padding == "valid":
            p = (0,) * dim
        elif padding == "same":
            if any(v != 1 for v in s):
                raise SettingsError("padding 'same' needs stride 1")
            if any((di * (ki - 1)) % 2 for ki, di in zip(k, d)):
                raise SettingsError("padding 'same' needs odd (dilated) kernel spans here")
            p = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d))
        else:
            raise SettingsError(f"unknown padding {padding!r}; use a number, 'valid' or 'same'")
    else:
        p = _tuple(padding, dim, "padding", minimum=0)
    if in_channels < 1:
        raise SettingsError(f"in_channels must be >= 1, got {in_channels}")
    if filters is not None and filters < 1:
        raise SettingsError(f"filters must be >= 1, got {filters}")
    out_ch = filters or 1
    if in_channels % groups or out_ch % groups:
        raise SettingsError(f"groups={groups} must divide in_channels={in_channels} and filters={out_ch}")
    out = tuple(conv_output_size(n, ki, stride=si, padding=pi, dilation=di)
                for n, ki, si, pi, di in zip(spatial, k, s, p, d))
    weights = out_ch * math.prod(k) * (in_channels // groups)
    return ConvShape(dim=dim, input_spatial=spatial, in_channels=in_channels, kernel=k, stride=s, padding=p,
                     dilation=d, filters=filters, output_spatial=out, weights=weights,
                     biases=out_ch if bias else 0)


def parse_sizes(text: str, name: str = "size") -> tuple[int, ...]:
    """'14x14x3' -> (14, 14, 3); also accepts '*' or ',' between the numbers (one separator each)."""
    compact = re.sub(r"\s*([x×*,])\s*", r"\1", text.strip().lower())
    if not compact:
        raise SettingsError(f"{name} is empty")
    if not re.fullmatch(r"\d+([x×*,]\d+)*", compact):
        raise SettingsError(f"{name} {text!r} is not like 14x14x3 (whole numbers, one 'x' between them)")
    return tuple(int(p) for p in re.split(r"[x×*,]", compact))


def split_channels(shape: Sequence[int], dim: int | None = None) -> tuple[tuple[int, ...], int]:
    """Spatial axes and channels of a channels-last shape like the course writes it.

    With `dim` given, the numbers after the first `dim` are one channel axis.
    Without it: 1 number -> 1D, 2 -> 2D, 3 -> 2D with channels (14x14x3, an RGB
    image), 4 -> 3D with channels (14x14x14x1). A 3D input without channels needs
    dim=3 (or a 3-number kernel).
    """
    shape = tuple(shape)
    if dim is None:
        dim = {1: 1, 2: 2, 3: 2, 4: 3}.get(len(shape))
        if dim is None:
            raise SettingsError(f"cannot read {len(shape)} numbers as an input; give at most 4 (e.g. 14x14x14x1)")
    if dim not in (1, 2, 3):
        raise SettingsError(f"dim must be 1, 2 or 3, got {dim}")
    if len(shape) == dim:
        return shape, 1
    if len(shape) == dim + 1:
        return shape[:dim], shape[dim]
    raise SettingsError(f"a {dim}D input has {dim} sizes and optionally channels; got {len(shape)} numbers")
