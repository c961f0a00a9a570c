"""Building blocks generic over the dimension (1, 2 or 3): one implementation, `dim` chooses.

`conv(2, ...)` is an `nn.Conv2d`, `conv(3, ...)` an `nn.Conv3d`; norms and pools
likewise. The residual block and the classifier (models.py) are written once on
top of these factories, so a 1D ECG net, a 2D image net and a 3D volume or video
net are the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from ..errors import SettingsError

NormKind = Literal["batch", "group", "instance", "none"]
PoolKind = Literal["max", "avg"]

# Callable: each class's stubs want tuples of exactly `dim` ints, which no dim-generic signature can say.
_CONV: dict[int, Callable[..., nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BATCH = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_GLOBAL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_DROPOUT = {1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}


def check_dim(dim: int) -> int:
    if dim not in (1, 2, 3):
        raise SettingsError(f"dim must be 1, 2 or 3, got {dim!r}")
    return dim


def conv(dim: int, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], *,
         stride: int | Sequence[int] = 1, padding: int | Sequence[int] | str = "auto", dilation: int = 1,
         groups: int = 1, bias: bool = True) -> nn.Module:
    """A `dim`-D convolution; padding "auto" keeps the size at stride 1 (k // 2 per axis)."""
    check_dim(dim)
    if padding == "auto":
        ks = (kernel_size,) * dim if isinstance(kernel_size, int) else tuple(kernel_size)
        padding = tuple(dilation * (k - 1) // 2 for k in ks)
    return _CONV[dim](in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, bias=bias)


def norm(dim: int, channels: int, *, kind: NormKind = "batch", groups: int = 8) -> nn.Module:
    """Batch, group (dimension-free), instance norm, or identity."""
    check_dim(dim)
    if kind == "batch":
        return _BATCH[dim](channels)
    if kind == "group":
        return nn.GroupNorm(min(groups, channels), channels)
    if kind == "instance":
        return _INSTANCE[dim](channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise SettingsError(f"unknown norm {kind!r}; use 'batch', 'group', 'instance' or 'none'")


def pool(dim: int, *, kind: PoolKind = "max", kernel_size: int | Sequence[int] = 2,
         stride: int | Sequence[int] | None = None, padding: int = 0) -> nn.Module:
    """Max or average pooling in `dim` dimensions."""
    check_dim(dim)
    size = kernel_size if isinstance(kernel_size, int) else tuple(kernel_size)
    step = stride if stride is None or isinstance(stride, int) else tuple(stride)
    if kind == "max":
        return _MAXPOOL[dim](size, stride=step, padding=padding)
    if kind == "avg":
        return _AVGPOOL[dim](size, stride=step, padding=padding)
    raise SettingsError(f"unknown pool {kind!r}; use 'max' or 'avg'")


def global_pool(dim: int) -> nn.Module:
    """Average over every spatial axis: (N, C, ...) -> (N, C)."""
    return nn.Sequential(_GLOBAL[check_dim(dim)](1), nn.Flatten(1))


def dropout(dim: int, p: float) -> nn.Module:
    """Channel dropout (whole feature maps) in `dim` dimensions."""
    return _DROPOUT[check_dim(dim)](p) if p > 0 else nn.Identity()


def conv_norm_act(dim: int, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], *,
                  stride: int | Sequence[int] = 1, norm_kind: NormKind = "batch") -> nn.Sequential:
    """conv -> norm -> ReLU (no conv bias when a norm follows)."""
    return nn.Sequential(conv(dim, in_channels, out_channels, kernel_size, stride=stride, bias=norm_kind == "none"),
                         norm(dim, out_channels, kind=norm_kind), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """The basic ResNet block in `dim` dimensions: two k-convs, a shortcut (1x1 conv when shape changes)."""

    def __init__(self, dim: int, in_channels: int, out_channels: int, *, kernel_size: int | Sequence[int] = 3,
                 stride: int | Sequence[int] = 1, norm_kind: NormKind = "batch", drop: float = 0.0) -> None:
        super().__init__()
        check_dim(dim)
        self.conv1 = conv(dim, in_channels, out_channels, kernel_size, stride=stride, bias=norm_kind == "none")
        self.norm1 = norm(dim, out_channels, kind=norm_kind)
        self.drop = dropout(dim, drop)
        self.conv2 = conv(dim, out_channels, out_channels, kernel_size, bias=norm_kind == "none")
        self.norm2 = norm(dim, out_channels, kind=norm_kind)
        strided = stride != 1 and stride != (1,) * dim
        if strided or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                conv(dim, in_channels, out_channels, 1, stride=stride, bias=norm_kind == "none"),
                norm(dim, out_channels, kind=norm_kind))
        else:
            self.shortcut = nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(self.drop(y)))
        return self.act(y + self.shortcut(x))


def count_parameters(module: nn.Module, *, trainable: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)
